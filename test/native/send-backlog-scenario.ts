// Test fixture, run by udp-batch.test.ts in a child Node inside its own
// network namespace whose loopback sends through a slow token bucket (tc
// tbf): replies queue in the qdisc and stay charged to the socket's send
// buffer, so sendmmsg takes part of a batch and then says EAGAIN. A client
// sends `count` numbered queries in one burst; the socket answers each with
// `size` bytes starting with its number. Prints one JSON line: how many
// distinct replies came back, how many came more than once, the socket's
// stats(), and whether a query sent after the backlog was answered.

import dgram from 'node:dgram';
import { loadUdpBatch, META_BYTES, META_RX_LEN, META_TX_LEN, openBatchSocket, type BatchSocket } from '../../native/udp-batch.ts';

const count = Number(process.argv[2]);
const size = Number(process.argv[3]);
const loaded = loadUdpBatch();
if (loaded.addon === null) throw new Error(loaded.reason);
const W = META_BYTES / 4;
let socket: BatchSocket | null = null;
socket = openBatchSocket(loaded.addon, { host: '127.0.0.1', port: 0, receiveBuffer: 8 << 20, batch: 64 }, (n) => {
  const s = socket!;
  for (let i = 0; i < n; i++) {
    const len = s.meta[i * W + META_RX_LEN];
    s.tx[i].fill(0x2e, 0, size);
    s.tx[i].set(s.rx[i].subarray(0, len));
    s.meta[i * W + META_TX_LEN] = size;
  }
});
const client = dgram.createSocket('udp4');
await new Promise<void>((resolve) => client.bind(0, '127.0.0.1', resolve));
client.setRecvBufferSize(8 << 20);
const seen = new Map<string, number>();
let wake: () => void = () => {};
client.on('message', (m) => {
  const key = m.subarray(0, 8).toString();
  seen.set(key, (seen.get(key) ?? 0) + 1);
  wake();
});
const until = async (done: () => boolean, ms: number): Promise<void> => {
  const end = Date.now() + ms;
  while (!done() && Date.now() < end) await new Promise<void>((resolve) => {
    wake = resolve;
    setTimeout(resolve, 50);
  });
};
for (let i = 0; i < count; i++) client.send(String(i).padStart(8, '0'), socket.port, '127.0.0.1');
await until(() => seen.size >= count, 20_000);
// Anything still coming would be a duplicate: give it a moment, then ask once more.
await new Promise((resolve) => setTimeout(resolve, 200));
client.send('after---', socket.port, '127.0.0.1');
await until(() => seen.has('after---'), 5_000);
const duplicates = [...seen.values()].filter((v) => v > 1).length;
console.log(JSON.stringify({ distinct: seen.size - (seen.has('after---') ? 1 : 0), duplicates, after: seen.has('after---'), stats: socket.stats() }));
socket.close();
client.close();
