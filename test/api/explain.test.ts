// GET /api/v1/explain against the real overwatch: what it says DNS would
// answer is what the real workers then answer, and an override shows up as
// the reason a server is left out.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ask } from '../helpers/dns-client.ts';
import { startServer } from '../helpers/server.ts';
import { call, startTestApi } from './helpers.ts';

const YAML = `
dns: { listen_address: "127.0.0.1:0", workers: 1, zones: [example.test] }
regions:
  - name: eu
    servers: [{ address: 192.0.2.1, port: 80 }, { address: "2001:db8::1", port: 80 }]
  - name: us
    servers: [{ address: 192.0.2.3, port: 80 }]
domains:
  - { name: api.example.test, routing_algorithm: failover, regions: [eu, us], ttl: 20 }
logging: { level: error }
`;

async function dnsAnswer(port: number, name: string, type = 'A'): Promise<string[]> {
  const r = await ask(port, name, type);
  return (r.answers ?? []).map((a) => (a as { data: string }).data);
}

test('explains the answer the DNS workers give, with the policy and every candidate', async (t) => {
  const { overwatch, port } = await startServer(t, YAML);
  const api = await startTestApi(t, overwatch);
  const r = await call(api.base, 'GET', '/api/v1/explain?name=API.example.test.');
  assert.equal(r.status, 200);
  assert.match(r.headers.get('content-type') ?? '', /^application\/json/);
  const e = r.body;
  assert.equal(e.name, 'api.example.test');
  assert.equal(e.type, 'A', 'type defaults to A');
  assert.equal(e.client, null);
  assert.equal(e.rcode, 'NOERROR');
  assert.equal(e.domain, 'api.example.test');
  assert.equal(e.policy, 'failover');
  assert.equal(e.ttl, 20);
  assert.equal(e.selection, 'fixed');
  assert.deepEqual(e.answers, ['192.0.2.1']);
  assert.deepEqual(await dnsAnswer(port, 'api.example.test'), e.answers);
  assert.deepEqual(e.candidates.map((c: { address: string; eligible: boolean }) => [c.address, c.eligible]), [['192.0.2.1', true], ['192.0.2.3', false]]);
  assert.ok(Array.isArray(e.notes) && e.notes.length > 0);
});

test('explains an override as the reason a server is left out, as DNS then answers', async (t) => {
  const { overwatch, port } = await startServer(t, YAML);
  const api = await startTestApi(t, overwatch);
  assert.equal((await call(api.base, 'PUT', '/api/v1/overrides/api.example.test/192.0.2.1', { body: { healthy: false, reason: 'maintenance', source: 'alice' } })).status, 200);
  const e = (await call(api.base, 'GET', '/api/v1/explain?name=api.example.test&type=A')).body;
  assert.deepEqual(e.answers, ['192.0.2.3']);
  assert.deepEqual(await dnsAnswer(port, 'api.example.test'), ['192.0.2.3']);
  const out = e.candidates.find((c: { address: string }) => c.address === '192.0.2.1');
  assert.equal(out.eligible, false);
  assert.equal(out.authority, 'override');
  assert.match(out.reason, /alice/);
  assert.match(out.reason, /maintenance/);
});

const queries = [
  { name: 'takes the type in lower case', query: 'name=api.example.test&type=aaaa', expect: { type: 'AAAA', rcode: 'NOERROR', answers: ['2001:db8::1'] } },
  { name: 'takes TYPEnnn', query: 'name=api.example.test&type=TYPE65', expect: { type: 'TYPE65', rcode: 'NOERROR', answers: [] } },
  { name: 'normalises the client address', query: 'name=api.example.test&client=::ffff:198.51.100.7', expect: { client: '198.51.100.7', rcode: 'NOERROR' } },
  { name: 'takes an IPv6 client', query: 'name=api.example.test&client=2001:DB8::77', expect: { client: '2001:db8::77' } },
  { name: 'explains REFUSED for a name outside every zone', query: 'name=www.elsewhere.test', expect: { rcode: 'REFUSED', answers: [] } },
  { name: 'explains NXDOMAIN for a name inside the zone that does not exist', query: 'name=nope.example.test', expect: { rcode: 'NXDOMAIN' } },
];
for (const q of queries) {
  test(`GET /api/v1/explain ${q.name}`, async (t) => {
    const { overwatch } = await startServer(t, YAML);
    const api = await startTestApi(t, overwatch);
    const r = await call(api.base, 'GET', `/api/v1/explain?${q.query}`);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    for (const [k, v] of Object.entries(q.expect)) assert.deepEqual(r.body[k], v, k);
  });
}

test('answers 400 for a type that is no DNS type and for a name no query can carry', async (t) => {
  const { overwatch } = await startServer(t, YAML);
  const api = await startTestApi(t, overwatch);
  const badType = await call(api.base, 'GET', '/api/v1/explain?name=api.example.test&type=FOO');
  assert.equal(badType.status, 400);
  assert.match(badType.body.error, /"FOO" is not a DNS type/);
  const badName = await call(api.base, 'GET', `/api/v1/explain?name=${'a'.repeat(64)}.example.test`);
  assert.equal(badName.status, 400);
  assert.equal(badName.body.code, 400);
  assert.match(badName.body.error, /has a label of 64 octets .*, expected at most 63 per label/);
  // Where and what was expected: the empty label is named as such, not as label "" of a wrong size.
  const emptyLabel = await call(api.base, 'GET', '/api/v1/explain?name=a..b');
  assert.equal(emptyLabel.status, 400);
  assert.equal(emptyLabel.body.error, 'name "a..b" has an empty label (two dots in a row, or a leading dot), expected labels of 1..63 octets');
});
