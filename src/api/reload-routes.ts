// Main thread, cold path. The config reload as an API call, and the status of
// the config now serving. POST /api/v1/reload runs the same ConfigReloader as
// SIGHUP (reloads never interleave: a request while one runs joins the next)
// and answers with its outcome: what changed, or every problem with
// file:line:col and the generation still serving. GET /api/v1/status says
// which config serves since when, and how the last failed reload failed.

import type { FastifyInstance } from 'fastify';
import type { ConfigProblem } from '../config/problems.ts';
import { formatProblem } from '../config/problems.ts';
import { OpenGslbError } from '../lib/errors.ts';
import type { ReloadOutcome, ReloadStatus } from '../overwatch/reload.ts';
import { rfc3339 } from '../overwatch/views.ts';
import { clientOf, requireOverwatch, type ApiReloader, type RouteContext } from './context.ts';
import { generatedAt, obj, responses, str, type Schema } from './schemas.ts';

/** HTTP status of a reload that failed: the request was fine, the config it asked for was not (RFC 9110 §15.5.21). */
export const RELOAD_FAILED_STATUS = 422;

const list = (description: string): Schema => ({ type: 'array', items: { type: 'string' }, description });
const changeList = (what: string): Schema =>
  obj(`${what} the reload added, removed and changed.`, {
    added: list(`${what} in the new config only.`),
    removed: list(`${what} in the old config only.`),
    changed: list(`${what} in both, with different settings.`),
  });

const problem: Schema = obj('One problem of the config, where it is.', {
  file: str('The file, as the config names it (relative to the working directory, or absolute).'),
  line: { type: 'integer', description: '1-based line; 0 when the problem concerns the whole file.' },
  col: { type: 'integer', description: '1-based column; 0 for the whole file.' },
  path: str('Dotted key path ("regions[0].servers[2].address"); empty for the whole file.'),
  message: str('What is wrong and what was expected.'),
  text: str('The problem as one line: FILE:LINE:COL: path: message.'),
});

const outcome: Schema = {
  $id: 'ReloadOutcome',
  ...obj(
    'How one reload ended.',
    {
      result: { type: 'string', enum: ['success', 'failure'], description: 'success: the new config serves; failure: the old one still does.' },
      generation: { type: 'integer', description: 'Snapshot generation serving afterwards: the new one on success, the old one (still serving) on failure.' },
      message: str('One line: "serving generation N", or why the reload failed.'),
      files: list('The files read, main first (empty when loading failed).'),
      changes: {
        oneOf: [obj('What changed.', { domains: changeList('Domains (by name)'), servers: changeList('Servers (as region/address:port)') }), { type: 'null' }],
        description: 'What the reload changed; null on failure.',
      },
      problems: { type: 'array', items: problem, description: 'Every problem of an invalid config, in file order; empty otherwise.' },
      warnings: {
        type: 'array',
        items: problem,
        description: 'On success, the new config\'s warnings (settings that load but most likely do not do what was meant; the server logs each too); empty otherwise.',
      },
      at: { type: 'string', format: 'date-time', description: 'When the reload finished (RFC 3339, UTC).' },
      error: str('On failure only: what failed, and that the old config still serves.'),
      code: { type: 'integer', description: `On failure only: ${RELOAD_FAILED_STATUS}, as in every error body.` },
    },
    ['error', 'code'],
  ),
};

const failure: Schema = obj('The last failed reload.', {
  at: { type: 'string', format: 'date-time', description: 'When it failed.' },
  message: str('Why: the first problem (FILE:LINE:COL: path: message), or the refusal.'),
  problems: { type: 'integer', description: 'How many problems the config had (0 for a refusal).' },
});

const statusBody: Schema = obj('The config now serving and the reloads so far.', {
  version: str('OpenGSLB version.'),
  generation: { type: 'integer', description: 'Generation of the snapshot serving now (opengslb_snapshot_generation).' },
  config: obj('The config now serving.', {
    file: str('The main config file.'),
    generation: { type: ['integer', 'null'], description: 'Snapshot generation this config was published with (1 at start); null when the overwatch was not started from a file.' },
    loaded_at: { type: ['string', 'null'], format: 'date-time', description: 'When it was loaded: start-up, or the last successful reload.' },
  }),
  reloads: obj('Reloads (SIGHUP and POST /api/v1/reload) by result since start.', {
    success: { type: 'integer', description: 'Successful reloads.' },
    failure: { type: 'integer', description: 'Failed reloads (invalid config, or a change that needs a restart).' },
  }),
  last_reload: { oneOf: [{ $ref: 'ReloadOutcome#' }, { type: 'null' }], description: 'The last reload, or null when none ran.' },
  last_failed_reload: { oneOf: [failure, { type: 'null' }], description: 'The last failed reload, or null when none failed.' },
  generated_at: generatedAt,
});

/** The shared schemas this module adds (server.ts registers them with the others). */
export const RELOAD_SCHEMAS: readonly Schema[] = [outcome];

/** Registers POST /api/v1/reload and GET /api/v1/status. */
export function registerReloadRoutes(app: FastifyInstance, ctx: RouteContext): void {
  app.post(
    '/api/v1/reload',
    {
      schema: {
        summary: 'Reloads the config files, as SIGHUP does, and answers with the outcome.',
        description:
          `200: the new config serves; the body says what changed. ${RELOAD_FAILED_STATUS}: the old config still serves; the body has every problem ` +
          'with file:line:col, or the reason a change was refused (one that needs a restart). A request while a reload runs waits for the next one.',
        tags: ['config'],
        security: [{ bearer: [] }],
        response: responses({ 200: { $ref: 'ReloadOutcome#', description: 'Reloaded.' }, [RELOAD_FAILED_STATUS]: { $ref: 'ReloadOutcome#', description: 'Failed; the old config still serves.' } }, 401),
      },
    },
    async (request, reply) => {
      requireOverwatch(ctx);
      const reloader = requireReloader(ctx);
      ctx.log.info({ client: clientOf(ctx, request) }, 'reload requested');
      const done = await reloader.request();
      const body = outcomeView(done);
      if (done.result === 'success') return body;
      return reply.code(RELOAD_FAILED_STATUS).send({ ...body, error: failureMessage(done), code: RELOAD_FAILED_STATUS });
    },
  );

  app.get(
    '/api/v1/status',
    {
      schema: {
        summary: 'The config now serving (file, generation, when loaded), reload counts, the last reload and the last failed one.',
        tags: ['config'],
        response: responses({ 200: { ...statusBody, description: 'Status.' } }),
      },
    },
    () => {
      const ow = requireOverwatch(ctx);
      const reloader = ctx.deps.reloader?.() ?? null;
      const s: ReloadStatus | null = reloader?.status() ?? null;
      return {
        version: ctx.deps.version,
        generation: ow.generation,
        config: {
          file: s?.path ?? ow.config.source,
          generation: s?.configGeneration ?? null,
          loaded_at: s === null ? null : rfc3339(s.loadedAtMs),
        },
        reloads: s?.reloads ?? { success: 0, failure: 0 },
        last_reload: s?.last ? outcomeView(s.last) : null,
        last_failed_reload: s?.lastFailure ? { at: rfc3339(s.lastFailure.atMs), message: s.lastFailure.message, problems: s.lastFailure.problems.length } : null,
        generated_at: new Date().toISOString(),
      };
    },
  );
}

function requireReloader(ctx: RouteContext): ApiReloader {
  const reloader = ctx.deps.reloader?.() ?? null;
  if (reloader === null) throw new OpenGslbError('OPENGSLB_ERR_API_STARTING', 'reload is not available yet: the overwatch is still starting (or was not started from a config file)');
  return reloader;
}

/** The outcome as the API serves it (snake_case, RFC 3339). */
function outcomeView(o: ReloadOutcome): Record<string, unknown> {
  return {
    result: o.result,
    generation: o.generation,
    message: o.message,
    files: o.files,
    changes: o.changes,
    problems: o.problems.map(problemView),
    warnings: o.warnings.map(problemView),
    at: rfc3339(o.atMs),
  };
}

function problemView(p: ConfigProblem): Record<string, unknown> {
  return { file: p.file, line: p.line, col: p.col, path: p.path, message: p.message, text: formatProblem(p) };
}

/** One line: that it failed, that generation N still serves, and why (the first problem and how many more). */
function failureMessage(o: ReloadOutcome): string {
  const first = o.problems[0];
  const why = first === undefined ? o.message : `${formatProblem(first)}${o.problems.length > 1 ? ` (and ${o.problems.length - 1} more problems)` : ''}`;
  return `reload failed; the previous config still serves (generation ${o.generation}): ${why}`;
}

