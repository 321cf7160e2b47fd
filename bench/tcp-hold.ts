// Bench only. What clients that pipeline TCP queries and never read their
// replies cost the server: starts the real server (src/cli/opengslb.js, one
// DNS worker, a name whose AAAA answer is 32 records, ~1 kB), opens
// --connections connections that each write --queries queries for it at once
// and never read, then reports the server's RSS before, at the peak and after
// the connections close, and whether other clients were answered meanwhile
// over UDP and TCP.
//
// Usage: npx node bench/tcp-hold.ts [--connections 500] [--queries 10000] [--hold 10]

import { spawn } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { encodeQuery } from './lib/query-wire.ts';
import { SERVER_ENV, SERVER_NODE_FLAGS } from '../src/cli/runtime-flags.js';

const ROOT = path.dirname(path.dirname(fileURLToPath(import.meta.url)));
const { values } = parseArgs({ options: { connections: { type: 'string' }, queries: { type: 'string' }, hold: { type: 'string' } } });
const connections = Number(values.connections ?? 500);
const queries = Number(values.queries ?? 10_000);
const holdSec = Number(values.hold ?? 10);

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'opengslb-tcp-hold-'));
const config = [
  'dns:',
  '  listen_address: "127.0.0.1:0"',
  '  workers: 1',
  '  zones: [bench.test]',
  `  tcp_max_connections: ${Math.max(1024, connections + 16)}`,
  `  tcp_max_connections_per_client: ${Math.max(1024, connections + 16)}`,
  '  tcp_idle_timeout: 1h',
  'regions:',
  '  - name: r1',
  '    health_check: { type: none }',
  `    servers: [${Array.from({ length: 32 }, (_, i) => `{ address: "2001:db8::${(i + 1).toString(16)}" }`).join(', ')}]`,
  'domains:',
  '  - { name: app.bench.test, regions: [r1], max_answers: 32 }',
  'logging: { level: info, format: json }',
  'overwatch: { data_dir: ./state }',
  '',
].join('\n');
fs.writeFileSync(path.join(dir, 'config.yaml'), config, { mode: 0o600 });

const child = spawn(process.execPath, [...SERVER_NODE_FLAGS, path.join(ROOT, 'src/cli/opengslb.js'), '--config', path.join(dir, 'config.yaml')], {
  env: { ...process.env, ...SERVER_ENV },
  stdio: ['ignore', 'pipe', 'inherit'],
});
let port = 0;
let out = '';
await new Promise<void>((resolve, reject) => {
  child.stdout.on('data', (d: Buffer) => {
    out += d.toString();
    const line = out.split('\n').find((l) => l.includes('DNS listening'));
    const m = line === undefined ? null : /"address":"127\.0\.0\.1:(\d+)"/.exec(line);
    if (m !== null && port === 0) {
      port = Number(m[1]);
      resolve();
    }
  });
  child.once('exit', () => reject(new Error(`the server exited: ${out}`)));
});

const rssMb = (): number => Number(/VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${child.pid}/status`, 'utf8'))?.[1] ?? 0) / 1024;
const query = encodeQuery(1, { name: 'app.bench.test', qtype: 28 });
const frame = Buffer.concat([Buffer.from([query.length >> 8, query.length & 0xff]), query]);

/** One TCP query from a fresh connection; resolves with the reply length, or 0 after 2 s. */
async function probeTcp(): Promise<number> {
  const c = net.connect({ host: '127.0.0.1', port });
  c.on('error', () => undefined);
  const connected = await Promise.race([once(c, 'connect').then(() => true), new Promise<boolean>((resolve) => setTimeout(() => resolve(false), 2000))]);
  if (!connected) {
    c.destroy();
    return 0;
  }
  c.write(frame);
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      c.destroy();
      resolve(0);
    }, 2000);
    c.once('data', (data: Buffer) => {
      clearTimeout(timer);
      c.destroy();
      resolve(data.length);
    });
  });
}

const before = rssMb();
const pipeline = Buffer.concat(Array.from({ length: queries }, () => frame));
const hogs: net.Socket[] = [];
for (let i = 0; i < connections; i++) {
  const h = net.connect({ host: '127.0.0.1', port });
  h.on('error', () => undefined);
  h.pause();
  h.on('connect', () => h.write(pipeline));
  hogs.push(h);
}
let peak = before;
let answered = 0;
let tries = 0;
const until = Date.now() + holdSec * 1000;
while (Date.now() < until) {
  tries++;
  if ((await probeTcp()) > 0) answered++;
  peak = Math.max(peak, rssMb());
  await new Promise((resolve) => setTimeout(resolve, 200));
}
for (const h of hogs) h.destroy();
await new Promise((resolve) => setTimeout(resolve, 2000));
const afterClose = rssMb();
child.kill('SIGTERM');
await once(child, 'exit');
fs.rmSync(dir, { recursive: true, force: true });
const result = {
  connections,
  queriesPerConnection: queries,
  rssBeforeMb: Math.round(before * 10) / 10,
  rssPeakMb: Math.round(peak * 10) / 10,
  addedMb: Math.round((peak - before) * 10) / 10,
  rssAfterCloseMb: Math.round(afterClose * 10) / 10,
  otherTcpClientsAnswered: `${answered}/${tries}`,
};
process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
