// dns.udp_receive_buffer: every worker's UDP socket gets the receive buffer
// asked for, as the kernel itself reports it (ss from iproute2, `skmem rb`),
// and a grant below the ask is logged with the sysctl that lifts the cap.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { parseConfigText } from '../../src/config/load.ts';
import { startServer } from '../helpers/server.ts';

const linuxOnly = { skip: process.platform !== 'linux' ? 'SO_RCVBUF doubling and /proc/sys/net/core are Linux' : false };

const yaml = (extra: string): string => `
dns: { listen_address: "127.0.0.1:0", workers: 2, zones: [example.test]${extra} }
regions: [{ name: r, servers: [{ address: 192.0.2.1 }] }]
domains: [{ name: app.example.test, regions: [r] }]
logging: { level: info }
`;

const sysctl = (name: string): number => Number(readFileSync(`/proc/sys/net/core/${name}`, 'utf8').trim());

/** The `rb` (receive buffer, bytes as the kernel accounts them) of every UDP socket bound to 127.0.0.1:port. */
function receiveBuffers(port: number): number[] {
  const r = spawnSync('ss', ['-ulmnH', `sport = :${port}`], { encoding: 'utf8' });
  if (r.error !== undefined) throw new Error(`ss (iproute2) is needed to read socket buffers: apt-get install iproute2 (${r.error.message})`);
  return [...r.stdout.matchAll(/\brb(\d+)\b/g)].map((m) => Number(m[1]));
}

/** The JSON log lines with this message. */
const linesWith = (logs: string[], msg: RegExp): Record<string, unknown>[] =>
  logs.map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => msg.test(String(l.msg)));

test('every worker\'s UDP socket gets 1 MiB by default, as the kernel reports it, and the listening line says so', linuxOnly, async (t) => {
  const granted = Math.min(1048576, sysctl('rmem_max'));
  const { port, logs } = await startServer(t, yaml(''));
  // Linux doubles SO_RCVBUF for its bookkeeping (socket(7)); rb shows the doubled figure.
  assert.deepEqual(receiveBuffers(port), [2 * granted, 2 * granted]);
  const [listening] = linesWith(logs, /^DNS listening/);
  assert.equal(listening.udpReceiveBuffer, granted);
  if (granted === 1048576) assert.deepEqual(linesWith(logs, /udp_receive_buffer/), [], 'no warning when the whole buffer is granted');
});

test('udp_receive_buffer: 0 keeps the kernel\'s default (net.core.rmem_default)', linuxOnly, async (t) => {
  const { port } = await startServer(t, yaml(', udp_receive_buffer: 0'));
  const dflt = sysctl('rmem_default');
  assert.deepEqual(receiveBuffers(port), [dflt, dflt]);
});

test('a buffer above net.core.rmem_max is granted up to the cap and the warning names the sysctl', linuxOnly, async (t) => {
  const max = sysctl('rmem_max');
  const asked = max + 65536;
  if (asked > 268435456) return t.skip(`net.core.rmem_max is ${max}, above the largest dns.udp_receive_buffer`);
  const { port, logs } = await startServer(t, yaml(`, udp_receive_buffer: ${asked}`));
  assert.deepEqual(receiveBuffers(port), [2 * max, 2 * max]);
  const [warning] = linesWith(logs, /udp_receive_buffer/);
  assert.ok(warning, `no warning in:\n${logs.join('\n')}`);
  assert.equal(warning.level, 'warn');
  assert.equal(warning.asked, asked);
  assert.equal(warning.granted, max);
  assert.match(String(warning.msg), new RegExp(`granted ${max} of the ${asked} bytes asked for; on Linux raise net.core.rmem_max \\(sysctl -w net.core.rmem_max=${asked}\\)`));
});

test('a reload that changes udp_receive_buffer is refused as needing a restart, and the sockets keep theirs', linuxOnly, async (t) => {
  const { overwatch, port } = await startServer(t, yaml(', udp_receive_buffer: 262144'));
  const result = await overwatch.reload(parseConfigText(yaml(', udp_receive_buffer: 524288'), 'next.yaml'));
  assert.equal(result.ok, false);
  assert.match(result.message, /^dns\.udp_receive_buffer changed; the socket settings are fixed when the workers start, so this needs a restart$/);
  const granted = Math.min(262144, sysctl('rmem_max'));
  assert.deepEqual(receiveBuffers(port), [2 * granted, 2 * granted]);
});
