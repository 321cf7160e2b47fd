// Main thread, cold path. The DNSSEC routes of the admin API: the keys'
// public status and the DS records to publish at the parent. Nothing here
// ever carries private key material: the views are built from public fields
// only (src/dnssec/keyring.ts), and the response schemas forbid any other
// property.

import type { FastifyInstance } from 'fastify';
import { KEY_SYNC_HEADER, KEY_SYNC_PATH } from '../dnssec/key-sync.ts';
import type { RolloverView } from '../dnssec/keyring.ts';
import { requireOverwatch, type RouteContext } from './context.ts';
import { generatedAt, obj, responses, str, type Schema } from './schemas.ts';

const int = (description: string): Schema => ({ type: 'integer', description });
const bool = (description: string): Schema => ({ type: 'boolean', description });

const keyView: Schema = obj('One zone key: public fields only.', {
  zone: str('Zone apex, lower case, no trailing dot.'),
  key_tag: int('Key tag (RFC 4034 Appendix B).'),
  algorithm: { type: 'string', enum: ['ECDSAP256SHA256', 'ED25519'], description: 'Algorithm name.' },
  algorithm_number: int('Algorithm number: 13 or 15.'),
  flags: int('DNSKEY flags: 257 (a combined signing key).'),
  public_key: str('The DNSKEY public-key field, base64.'),
  created: { type: 'string', format: 'date-time', description: 'When the key was made (RFC 3339, UTC).' },
  age_seconds: int('Seconds since it was made.'),
  state: { type: 'string', enum: ['published', 'active', 'withdrawn', 'retired'], description: 'published: in the DNSKEY RRset (a new algorithm\'s key: from its publish time on), not the zone\'s signing key yet; active: signs; withdrawn: an algorithm rollover\'s old key, out of the DNSKEY RRset and still signing until it retires; retired: in neither.' },
  signing: bool('This key signs the zone\'s answers now.'),
  in_dnskey_rrset: bool('This key is in the zone\'s DNSKEY RRset now: false for a withdrawn or retired key, and for a new algorithm\'s published key before its publish time.'),
});

const dsView: Schema = obj('A DS record for the parent zone (SHA-256 digest).', {
  zone: str('Zone apex.'),
  key_tag: int('Key tag.'),
  algorithm: int('Algorithm number.'),
  digest_type: int('Always 2 (SHA-256, RFC 4509).'),
  digest: str('The digest, upper-case hex.'),
  record: str('The whole record, ready to paste: "example.com. IN DS 12345 13 2 ABCD…".'),
});

const nullableTime = (description: string): Schema => ({ type: ['string', 'null'], format: 'date-time', description });

const keySyncView: Schema = obj('Key sync with the other overwatches (overwatch.dnssec.key_sync).', {
  enabled: bool('Peers are configured.'),
  in_sync: bool('The last poll of every peer succeeded (true without peers). When false, this node keeps signing with the keys it has.'),
  peers: {
    type: 'array',
    description: 'Each peer and its last poll.',
    items: obj('One peer.', {
      url: str('The peer\'s admin API, as configured.'),
      ok: bool('Its last poll succeeded.'),
      last_attempt: nullableTime('When it was last polled.'),
      last_success: nullableTime('When a poll last succeeded.'),
      last_error: { type: ['string', 'null'], description: 'Why the last poll failed, or null.' },
    }),
  },
});

const statusBody: Schema = obj('DNSSEC signing: settings and every key.', {
  enabled: bool('Answers to queries with the DO bit are signed.'),
  algorithm: { type: 'string', enum: ['ECDSAP256SHA256', 'ED25519'], description: 'Algorithm of keys generated from now on (overwatch.dnssec.algorithm).' },
  signature_validity_seconds: int('Validity of a new signature (overwatch.dnssec.signature_validity).'),
  keys: { type: 'array', items: keyView, description: 'Every key of every signed zone, retired ones included.' },
  key_sync: keySyncView,
  generated_at: generatedAt,
});

const sealedBody: Schema = obj('The keys of the zones served here, encrypted and authenticated for the one request that asked (AES-256-GCM under a key derived from key_sync.shared_secret).', {
  v: { type: 'integer', enum: [1], description: 'Format version.' },
  iv: str('AES-GCM IV, base64.'),
  sealed: str('Ciphertext and tag, base64.'),
});

const dsQuery: Schema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    zone: { type: 'string', minLength: 1, maxLength: 256, description: 'Only this zone (any case, trailing dot allowed); default: every signed zone.' },
  },
};

const dsBody: Schema = obj('The DS records to publish at the parent: one per key in the zone\'s DNSKEY RRset.', {
  ds: { type: 'array', items: dsView, description: 'DS records.' },
  generated_at: generatedAt,
});

const rolloverBody: Schema = obj('Where a zone\'s key rollover stands, and the next step.', {
  zone: str('Zone apex.'),
  phase: { type: 'string', enum: ['none', 'published', 'signing', 'withdrawing'], description: 'none: one key signs; published: a new key is in the DNSKEY RRset (a new algorithm\'s key: signs every RRset first, and joins the DNSKEY RRset after the zone\'s largest TTL) and signs after the DNSKEY TTL; signing: the new key signs, the old one is still published until finish; withdrawing: after an algorithm rollover\'s finish, the old key is out of the DNSKEY RRset and signs until the DNSKEY TTL has passed (switch_at).' },
  signing_key: int('Key tag of the key that signs the zone\'s answers now.'),
  new_key: { type: ['integer', 'null'], description: 'Key tag of the key being rolled to, or null.' },
  old_keys: { type: 'array', items: { type: 'integer' }, description: 'Key tags the finish step retires.' },
  switch_at: { type: ['string', 'null'], format: 'date-time', description: 'When the new key starts signing (withdrawing: when the old key retires), or null.' },
  publish_at: { type: ['string', 'null'], format: 'date-time', description: 'published: when a new algorithm\'s key joins the DNSKEY RRset while it signs unpublished; null once it is in it, and in the other phases.' },
  next_step: str('What to do next, in words.'),
  generated_at: generatedAt,
});

const zoneQuery: Schema = {
  type: 'object',
  additionalProperties: false,
  required: ['zone'],
  properties: { zone: { type: 'string', minLength: 1, maxLength: 256, description: 'Zone apex (any case, trailing dot allowed).' } },
};

const zoneBody: Schema = {
  type: 'object',
  additionalProperties: false,
  required: ['zone'],
  properties: { zone: { type: 'string', minLength: 1, maxLength: 256, description: 'Zone apex (any case, trailing dot allowed).' } },
};

/** Lower case, no trailing dot: how zones are named everywhere else. */
function zoneName(text: string): string {
  const lower = text.toLowerCase();
  return lower.endsWith('.') && lower.length > 1 ? lower.slice(0, -1) : lower;
}

/** Registers GET /api/v1/dnssec/status, GET /api/v1/dnssec/ds and the rollover routes. */
export function registerDnssecRoutes(app: FastifyInstance, ctx: RouteContext): void {
  app.get(
    '/api/v1/dnssec/status',
    {
      schema: {
        summary: 'DNSSEC: whether answers are signed, and every zone key (zone, tag, algorithm, flags, public key, created, age, state). Never private material.',
        tags: ['dnssec'],
        response: responses({ 200: statusBody }),
      },
    },
    () => ({ ...requireOverwatch(ctx).dnssecStatus(), generated_at: new Date().toISOString() }),
  );

  app.get<{ Querystring: { zone?: string } }>(
    '/api/v1/dnssec/ds',
    {
      schema: {
        summary: 'The DS records (SHA-256) to publish at the parent zone, as ready-to-paste records.',
        tags: ['dnssec'],
        querystring: dsQuery,
        response: responses({ 200: dsBody }, 400, 404),
      },
    },
    (request) => {
      const zone = request.query.zone === undefined ? null : zoneName(request.query.zone);
      return { ds: requireOverwatch(ctx).dnssecDs(zone), generated_at: new Date().toISOString() };
    },
  );

  app.get<{ Querystring: { zone: string } }>(
    '/api/v1/dnssec/rollover',
    {
      schema: {
        summary: 'Where the key rollover of a zone stands, and the next step.',
        tags: ['dnssec'],
        querystring: zoneQuery,
        response: responses({ 200: rolloverBody }, 400, 404),
      },
    },
    (request) => ({ ...requireOverwatch(ctx).rolloverStatus(zoneName(request.query.zone)), generated_at: new Date().toISOString() }),
  );

  // Starting and finishing a rollover: the same write, a different step.
  const rolloverStep = (
    step: 'start' | 'finish',
    summary: string,
    run: (zone: string) => Promise<RolloverView>,
    logged: (view: RolloverView) => Record<string, unknown>,
  ): void => {
    app.post<{ Body: { zone: string } }>(
      `/api/v1/dnssec/rollover/${step}`,
      {
        schema: { summary, tags: ['dnssec'], body: zoneBody, security: [{ bearer: [] }], response: responses({ 200: rolloverBody }, 400, 401, 404, 409) },
      },
      async (request) => {
        const zone = zoneName(request.body.zone);
        const view = await run(zone);
        ctx.log.info({ zone, ...logged(view) }, `key rollover ${step === 'start' ? 'started' : 'finished'} through the API`);
        return { ...view, generated_at: new Date().toISOString() };
      },
    );
  };
  rolloverStep(
    'start',
    'Starts a key rollover: a new key joins the DNSKEY RRset now and signs after the DNSKEY TTL; the old key keeps signing meanwhile.',
    (zone) => requireOverwatch(ctx).rolloverStart(zone),
    (view) => ({ keyTag: view.new_key }),
  );
  rolloverStep(
    'finish',
    'Finishes a key rollover once the new key signs and its DS is at the parent: the old key leaves the DNSKEY RRset.',
    (zone) => requireOverwatch(ctx).rolloverFinish(zone),
    (view) => ({ keyTag: view.signing_key }),
  );

  app.get(
    KEY_SYNC_PATH,
    {
      schema: {
        summary: `For the other overwatches' key sync: the zones' keys, sealed. The request must carry the ${KEY_SYNC_HEADER} header made with the same shared secret; anything else is refused (403).`,
        tags: ['dnssec'],
        response: responses({ 200: sealedBody }, 403, 404),
      },
    },
    (request) => {
      const header = request.headers[KEY_SYNC_HEADER];
      try {
        return requireOverwatch(ctx).keySyncAnswer(typeof header === 'string' ? header : undefined);
      } catch (err) {
        // A refused peer is worth a line: a wrong secret or a clock far off is a configuration problem.
        ctx.log.warn({ client: request.socket.remoteAddress, err: (err as Error).message }, 'key sync request refused');
        throw err;
      }
    },
  );
}
