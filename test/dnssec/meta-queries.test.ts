// Queries for the DNSSEC types themselves against the real signing server
// (worker threads, loopback): compact denial puts an NSEC at every name, so a
// query for NSEC gets it as data and one for RRSIG gets the RRSIG over it;
// a NODATA proof never lists the type asked (a validator sees the NSEC
// contradict the answer: delv said "no valid RRSIG" for `app.example.test
// NSEC` before workers/zone-answer.ts dnssecTypeAnswer); an explicit query
// for the NXNAME meta-type gets FORMERR (RFC 9824 §3.5). Validation of these
// answers by delv and unbound: test/dnssec/server.test.ts.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { parseConfigText } from '../../src/config/load.ts';
import { createLogger } from '../../src/log/logger.ts';
import { Overwatch } from '../../src/overwatch/overwatch.ts';
import { MemoryStore } from '../../src/state/store.ts';
import { ask, buildQuery, rcodeOf, udpExchange } from '../helpers/dns-client.ts';
import { signedZoneYaml } from './helpers.ts';

async function start(): Promise<Overwatch> {
  const quiet = new Writable({ write: (_c, _e, done) => done() });
  return Overwatch.start(parseConfigText(signedZoneYaml(), 'test.yaml'), createLogger({ level: 'error', format: 'json' }, quiet), { store: new MemoryStore(), healthChecks: 'off' });
}

interface Nsec {
  readonly type: string;
  readonly data: { rrtypes?: string[] };
}

test('NSEC and RRSIG queries get the name\'s NSEC or its RRSIG as data, never a NODATA that lists the type asked', async (t) => {
  const overwatch = await start();
  t.after(() => overwatch.stop(200));
  for (const [name, type] of [['app.example.test', 'NSEC'], ['example.test', 'NSEC'], ['nothing.example.test', 'NSEC'], ['app.example.test', 'RRSIG'], ['nothing.example.test', 'RRSIG']] as const) {
    for (const dnssecOk of [true, false]) {
      const r = await ask(overwatch.port, name, type, { edns: { do: dnssecOk } });
      assert.equal(r.rcode, 'NOERROR', `${name} ${type}`);
      assert.ok(r.flag_aa, `${name} ${type}: authoritative`);
      const types = (r.answers ?? []).map((a) => a.type);
      // NSEC: the record, and its RRSIG with DO; RRSIG: the one over the NSEC, DO or not.
      assert.deepEqual(types, type === 'NSEC' ? (dnssecOk ? ['NSEC', 'RRSIG'] : ['NSEC']) : ['RRSIG'], `${name} ${type} DO=${dnssecOk}`);
      for (const a of r.answers ?? []) assert.equal(a.name, name);
      const nsec = (r.answers ?? []).find((a) => a.type === 'NSEC') as unknown as Nsec | undefined;
      if (nsec !== undefined) assert.ok(nsec.data.rrtypes?.includes('NSEC') && nsec.data.rrtypes.includes('RRSIG'), JSON.stringify(nsec.data));
      if (name.startsWith('nothing')) assert.ok(nsec === undefined || nsec.data.rrtypes?.includes('UNKNOWN_128') === true, JSON.stringify(nsec?.data));
      const sig = (r.answers ?? []).find((a) => a.type === 'RRSIG') as unknown as { data: { typeCovered: string } } | undefined;
      if (sig !== undefined) assert.equal(sig.data.typeCovered, 'NSEC');
      assert.equal((r.authorities ?? []).length, 0, `${name} ${type}: no denial`);
    }
  }
});

test('an explicit query for NXNAME (type 128) is answered FORMERR (RFC 9824 §3.5), with the question and an OPT', async (t) => {
  const overwatch = await start();
  t.after(() => overwatch.stop(200));
  for (const name of ['nothing.example.test', 'app.example.test']) {
    // dns-packet has no name for type 128: build an A query and set QTYPE by hand (just past the question name).
    const query = buildQuery(name, 'A', { edns: { do: true } });
    query.writeUInt16BE(128, 12 + name.length + 2);
    const raw = await udpExchange(overwatch.port, query);
    assert.ok(raw !== null, `${name} TYPE128: no reply`);
    assert.equal(rcodeOf(raw), 1, `${name} TYPE128: FORMERR`);
    assert.equal(raw.readUInt16BE(4), 1, 'the question is echoed');
    assert.equal(raw.readUInt16BE(10), 1, 'the OPT is there');
  }
});
