// Main thread, cold path. The routes anyone may call (no allowlist): liveness,
// readiness and version; plus the OpenAPI document (allowlisted, but served
// while the overwatch starts).

import type { FastifyInstance } from 'fastify';
import type { Readiness } from '../overwatch/views.ts';
import { STARTING_MESSAGE, STOPPING_MESSAGE, type RouteContext } from './context.ts';
import { errorResponses, generatedAt, obj, str, type Schema } from './schemas.ts';

/** Paths that skip the allowlist and the token, as in the Go original: probes and version checks come from anywhere. */
export const OPEN_PATHS: ReadonlySet<string> = new Set(['/api/v1/live', '/api/v1/ready', '/api/v1/version']);
/** Paths that answer while the overwatch is still starting. */
export const STARTUP_PATHS: ReadonlySet<string> = new Set([...OPEN_PATHS, '/api/v1/openapi.json']);

const READY: Readiness = { ready: true, dns_ready: true, health_ready: true };
const NOT_READY: Readiness = { ready: false, dns_ready: false, health_ready: false, message: STARTING_MESSAGE };
const STOPPING: Readiness = { ready: false, dns_ready: false, health_ready: false, message: STOPPING_MESSAGE };

/** Registers live, ready, version and openapi.json. `openapi` returns the generated document. */
export function registerStatusRoutes(app: FastifyInstance, ctx: RouteContext, openapi: () => unknown): void {
  app.get(
    '/api/v1/live',
    {
      schema: {
        summary: 'Liveness: the process answers HTTP.',
        tags: ['status'],
        response: { 200: obj('Always alive while the process answers.', { alive: { type: 'boolean', enum: [true], description: 'Always true.' } }) },
      },
    },
    () => ({ alive: true }),
  );

  app.get(
    '/api/v1/ready',
    {
      schema: {
        summary: 'Readiness: 200 once DNS listens and the first health round has finished, 503 before and from the start of a shutdown.',
        tags: ['status'],
        response: {
          200: { $ref: 'Readiness#', description: 'Ready.' },
          503: { $ref: 'Readiness#', description: 'Still starting, or stopping.' },
        },
      },
    },
    (_request, reply) => {
      const ow = ctx.deps.overwatch();
      if (ow === null) return reply.code(503).send(NOT_READY);
      if (ow.stopping) return reply.code(503).send(STOPPING);
      return READY;
    },
  );

  const platform = `${process.platform}/${process.arch}`;
  app.get(
    '/api/v1/version',
    {
      schema: {
        summary: 'Version of OpenGSLB and of the Node.js running it.',
        tags: ['status'],
        response: {
          200: obj('Versions.', {
            version: str('OpenGSLB version.'),
            node_version: str('Node.js version (process.version).'),
            platform: str('Operating system and CPU architecture, as "linux/x64".'),
            generated_at: generatedAt,
          }),
        },
      },
    },
    () => ({ version: ctx.deps.version, node_version: process.version, platform, generated_at: new Date().toISOString() }),
  );

  const anyObject: Schema = { type: 'object', additionalProperties: true, description: 'An OpenAPI 3 document.' };
  app.get(
    '/api/v1/openapi.json',
    {
      schema: {
        summary: 'This API described as an OpenAPI 3 document, generated from the route schemas.',
        tags: ['status'],
        response: { 200: anyObject, ...errorResponses(403, 500) },
      },
    },
    () => openapi(),
  );
}
