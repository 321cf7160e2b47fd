// Overrides across reloads, in this process: an override whose region,
// domain or server a reload removes is kept inactive and named in a warning
// once, when it becomes uncovered, not at every reload while it stays so.

import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { test } from 'node:test';
import { parseConfigText } from '../../src/config/load.ts';
import { createLogger } from '../../src/log/logger.ts';
import { Overwatch } from '../../src/overwatch/overwatch.ts';
import { MemoryStore } from '../../src/state/store.ts';

function yaml(regions: readonly string[]): string {
  const address: Record<string, string> = { eu: '192.0.2.1', us: '192.0.2.2' };
  return [
    'dns: { listen_address: "127.0.0.1:0", workers: 1, zones: [example.test] }',
    'regions:',
    ...regions.map((r) => `  - { name: ${r}, health_check: { type: none }, servers: [{ address: ${address[r]} }] }`),
    `domains: [{ name: app.example.test, regions: [${regions.join(', ')}] }]`,
  ].join('\n');
}

test('a reload that leaves an override covering nothing warns once, naming it; reloads while it stays uncovered do not repeat it; it warns again after it was covered once more', async (t) => {
  const lines: { level: string; msg: string; target?: string; expected?: string }[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const l of chunk.toString('utf8').split('\n')) if (l !== '') lines.push(JSON.parse(l));
      done();
    },
  });
  const ow = await Overwatch.start(parseConfigText(yaml(['eu', 'us']), 'overwatch.yaml'), createLogger({ level: 'info', format: 'json' }, sink), { store: new MemoryStore(), healthChecks: 'off' });
  t.after(() => ow.stop(200));
  await ow.setOverride({ scope: 'region', region: 'us' }, { healthy: false, reason: 'maint', source: 'alice' });
  await ow.setOverride({ scope: 'server', address: '192.0.2.1' }, { healthy: true, reason: 'pinned', source: 'bob' });
  const warnings = () => lines.filter((l) => l.level === 'warn' && /override/.test(l.msg)).map((w) => `${w.target}: ${w.expected}`);

  for (const regions of [['eu'], ['eu']]) {
    const r = await ow.reload(parseConfigText(yaml(regions), 'overwatch.yaml'));
    assert.equal(r.ok, true, r.message);
  }
  assert.deepEqual(warnings(), ['every server of region us: expected one of: eu'], 'once, at the reload that removed region us');
  assert.match(lines.find((l) => l.level === 'warn' && /override/.test(l.msg))?.msg ?? '', /covers nothing this config serves/);
  assert.deepEqual(ow.overrides().map((o) => `${o.scope} ${o.active}`).sort(), ['region false', 'server true']);

  // Covered again, then removed again: a new warning.
  assert.equal((await ow.reload(parseConfigText(yaml(['eu', 'us']), 'overwatch.yaml'))).ok, true);
  assert.equal(warnings().length, 1);
  assert.equal((await ow.reload(parseConfigText(yaml(['us']), 'overwatch.yaml'))).ok, true);
  assert.deepEqual(warnings(), ['every server of region us: expected one of: eu', '192.0.2.1 in every domain: a domain or server of the config'], 'the server override, uncovered now; the region one is covered again');
});
