// The worked multi-file example of docs/configuration.md, config/example-multifile/,
// served by the real binary: its files are safe to ship (mode 644 at most),
// the listen address comes from the environment, and every domain the
// included files define answers.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { startOpengslb } from '../helpers/child.ts';
import { posixOnly, tempDir } from '../helpers/config-files.ts';
import { ask } from '../helpers/dns-client.ts';
import { filesUnder, ROOT } from '../helpers/markdown.ts';

const DIR = 'config/example-multifile';

test(`every file of ${DIR} has mode 644 at most`, posixOnly, async () => {
  const files = await filesUnder(DIR, '.yaml');
  assert.ok(files.length >= 5, files.join(', '));
  for (const file of files) {
    const mode = (await stat(join(ROOT, file))).mode & 0o777;
    assert.equal(mode & ~0o644, 0, `${file} has mode ${mode.toString(8)}`);
  }
});

test(`the real server starts from ${DIR}/main.yaml, listening where OPENGSLB_LISTEN says, and answers every included domain`, async (t) => {
  const state = await tempDir(t, 'opengslb-state-');
  const server = await startOpengslb(t, `${DIR}/main.yaml`, { env: { ...process.env, OPENGSLB_LISTEN: '127.0.0.1:0', OPENGSLB_LOG_LEVEL: 'info', OPENGSLB_DATA_DIR: state } });
  await server.out.waitFor(/files=7/);
  const us = ['127.0.0.20', '127.0.0.21'];
  const eu = ['127.0.0.10', '127.0.0.11'];
  const cases = [
    // eu-west is checked over TCP and down on a machine where nothing listens on 127.0.0.10:8080: failover answers us-east.
    { name: 'www.example.test', ttl: 30, count: 1, from: [...eu, ...us] },
    { name: 'api.example.test', ttl: 30, count: 2, from: [...us, ...eu] },
    { name: 'intranet.example.test', ttl: 300, count: 1, from: us },
  ];
  for (const c of cases) {
    const reply = await ask(server.port, c.name, 'A');
    const answers = (reply.answers ?? []) as { data: string; ttl?: number }[];
    assert.equal((reply as { rcode?: string }).rcode, 'NOERROR', c.name);
    assert.ok(answers.length >= 1 && answers.length <= c.count, `${c.name}: ${JSON.stringify(answers)}`);
    for (const a of answers) {
      assert.ok(c.from.includes(a.data), `${c.name} answered ${a.data}`);
      assert.equal(a.ttl, c.ttl, `${c.name}: the TTL comes from conf.d/30-dns-defaults.yaml or the domain's file`);
    }
  }
  const soa = await ask(server.port, 'example.test', 'SOA');
  assert.equal((soa.answers?.[0] as { data?: { rname?: string } } | undefined)?.data?.rname, 'hostmaster.example.test');
});
