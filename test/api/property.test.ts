// Property tests (fast-check) of the admin API's request bodies: any JSON
// body, and any bytes with any content type, sent to every write route the
// OpenAPI document lists (path parameters real or made up) gets a 2xx, or a
// 4xx with {"error": "<non-empty message>", "code": <status>}; never a 5xx.
// Real HTTP against the real opengslb binary (a child process started from a
// config file, so POST /api/v1/reload really reloads), DNSSEC on, the agent
// channel on.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import fc from 'fast-check';
import { startOpengslb } from '../helpers/child.ts';
import { tempDir } from '../helpers/config-files.ts';

const RUNS = 200;
const CONFIG = `
dns: { listen_address: "127.0.0.1:0", workers: 1, zones: [example.test] }
regions:
  - name: eu
    servers: [{ address: 192.0.2.1, port: 80 }, { address: 192.0.2.2, port: 80 }]
    health_check: { type: none }
  - name: us
    servers: [{ address: "2001:db8::3", port: 443 }]
    health_check: { type: none }
domains:
  - { name: app.example.test, regions: [eu, us] }
  - { name: eu.example.test, regions: [eu] }
api: { enabled: true, address: "127.0.0.1:0" }
overwatch:
  data_dir: ./state
  agent_tokens: { app.example.test: property-agent-token-0123 }
  gossip: { encryption_key: "${randomBytes(32).toString('base64')}", bind_address: "127.0.0.1:0" }
logging: { level: info }
`;
let base = '';

/** Values a path parameter may take: ones the server knows, plausible ones it does not, and junk. */
const PARAMS: Readonly<Record<string, readonly string[]>> = {
  service: ['app.example.test', 'eu.example.test', 'nothere.example.test', 'x'],
  address: ['192.0.2.1', '2001:db8::3', '198.51.100.9', 'not-an-ip'],
  region: ['eu', 'us', 'mars'],
  id: ['eu-0123456789ab', 'nobody'],
  zone: ['example.test', 'other.test'],
  cidr: ['10.0.0.0/8', '10.0.0.0%2F8', 'junk'],
};

function fill(path: string, pick: number, junk: string): string {
  return path.replace(/\{(\w+)\}/g, (_m, name: string) => {
    const known = PARAMS[name] ?? [];
    return pick % (known.length + 1) === known.length ? encodeURIComponent(junk) : known[pick % (known.length + 1)];
  });
}

/** Bodies shaped like the real ones (so validation goes past the first field), and anything at all. */
const bodyArb = fc.oneof(
  fc.record(
    {
      healthy: fc.oneof(fc.boolean(), fc.jsonValue({ maxDepth: 1 })),
      reason: fc.oneof(fc.string({ maxLength: 300 }), fc.jsonValue({ maxDepth: 1 })),
      source: fc.oneof(fc.string({ maxLength: 80 }), fc.constant(null)),
      expires_at: fc.oneof(fc.constantFrom('2099-01-01T00:00:00Z', '2000-01-01T00:00:00Z', 'tomorrow', ''), fc.integer()),
      duration: fc.constantFrom('1h', '0s', '-1h', 'forever', '999999h'),
      cidr: fc.constantFrom('10.0.0.0/8', '2001:db8::/32', '10.0.0.1', 'x'),
      region: fc.constantFrom('eu', 'us', 'mars', ''),
      comment: fc.string({ maxLength: 40 }),
      zone: fc.constantFrom('example.test', 'nope.test'),
    },
    { requiredKeys: [] },
  ),
  fc.jsonValue({ maxDepth: 3 }),
);


async function check(method: string, url: string, init: RequestInit): Promise<number> {
  const res = await fetch(`${base}${url}`, { method, ...init });
  const text = await res.text();
  assert.ok(res.status < 500, `${method} ${url} ${String(init.body).slice(0, 200)} → ${res.status} ${text}`);
  if (res.status >= 400) {
    const body = JSON.parse(text) as { error?: unknown; code?: unknown };
    assert.equal(body.code, res.status, `${method} ${url}: ${text}`);
    assert.ok(typeof body.error === 'string' && body.error.length > 0, `${method} ${url}: ${text}`);
  }
  return res.status;
}

// The two properties run at once against the one server: each request's outcome is judged alone (2xx, or a
// clear 4xx), so one stream's writes and reloads meeting the other's change no verdict (a 5xx from their
// meeting would be a bug all the same), and the start of the server is most of the rest.
test('request bodies to every write route of the real server get a 2xx or a clear 4xx, never a 5xx', { concurrency: true }, async (t) => {
  const dir = await tempDir(t, 'opengslb-api-prop-');
  const file = join(dir, 'config.yaml');
  await writeFile(file, CONFIG, { mode: 0o600 });
  const server = await startOpengslb(t, file);
  const line = await server.out.waitFor(/API listening/);
  base = `http://${/"address":"(127\.0\.0\.1:\d+)"/.exec(line)?.[1]}`;
  const doc = (await (await fetch(`${base}/api/v1/openapi.json`)).json()) as { paths: Record<string, Record<string, unknown>> };
  /** Every write route as the OpenAPI document writes it ("/api/v1/overrides/{service}/{address}"). */
  const routes: { method: string; path: string; body: boolean }[] = [];
  for (const [path, methods] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(methods)) {
      if (['put', 'post', 'delete', 'patch'].includes(method)) routes.push({ method: method.toUpperCase(), path, body: 'requestBody' in (op as object) });
    }
  }
  assert.ok(routes.length >= 10, `only ${routes.length} write routes: ${routes.map((r) => `${r.method} ${r.path}`).join(', ')}`);

  const json = t.test('any JSON body gets a 2xx, or a 4xx with a clear {error, code}', async () => {
  const seen = new Set<number>();
  await fc.assert(
    fc.asyncProperty(fc.nat({ max: 10_000 }), fc.nat(), fc.string({ maxLength: 20 }), bodyArb, async (r, pick, junk, body) => {
      const route = routes[r % routes.length];
      // A route that takes no body answers any body 400 (routes.test.ts): it gets none here, so its own outcomes show.
      const init: RequestInit = route.body ? { headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) } : {};
      seen.add(await check(route.method, fill(route.path, pick, junk), init));
    }),
    { numRuns: RUNS },
  );
  assert.ok([...seen].some((s) => s < 300) && [...seen].some((s) => s >= 400), `statuses seen: ${[...seen].join(', ')}`);
  });

  const bytes = t.test('any bytes with any content type get a 2xx or a clear 4xx', async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.nat({ max: 10_000 }),
      fc.nat(),
      fc.constantFrom('application/json', 'application/json; charset=utf-8', 'text/plain', 'application/x-www-form-urlencoded', 'application/octet-stream', ''),
      fc.oneof(fc.string({ maxLength: 200 }), fc.constantFrom('{', '[1,2', '{"healthy":', 'null', '""', '{"__proto__": {"x": 1}}', '{"constructor": {"prototype": {}}}', '\u0000', 'x'.repeat(20_000))),
      async (r, pick, type, raw) => {
        const route = routes[r % routes.length];
        await check(route.method, fill(route.path, pick, 'junk'), { headers: type === '' ? {} : { 'content-type': type }, body: raw });
      },
    ),
    { numRuns: RUNS },
  );
});
  await Promise.all([json, bytes]);
  assert.equal(server.child.exitCode, null, 'the server still runs');
});
