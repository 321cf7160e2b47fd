// The node:dgram path's lookup (workers/transport-udp.ts literalLookup): an IP
// literal of the socket's family comes straight back, before the call returns
// (no process.nextTick per reply); anything else is refused, since a DNS
// worker resolves no names. Then a real udp4 socket that uses it answers.

import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { once } from 'node:events';
import { test } from 'node:test';
import { literalLookup } from '../../workers/transport-udp.ts';

type Lookup = (address: string, family: number, callback: (err: NodeJS.ErrnoException | null, address: string, family: number) => void) => void;
const lookup = literalLookup as unknown as Lookup;

/** Calls the lookup and returns what its callback got, asserting that it ran before the call returned. */
function call(address: string, family: number): { err: NodeJS.ErrnoException | null; address: string } {
  let result: { err: NodeJS.ErrnoException | null; address: string } | null = null;
  lookup(address, family, (err, a) => (result = { err, address: a }));
  assert.ok(result !== null, 'the callback ran before lookup returned');
  return result;
}

test('a literal of the family comes back at once; another family or a name is refused with EINVAL', () => {
  assert.deepEqual(call('192.0.2.1', 4), { err: null, address: '192.0.2.1' });
  assert.deepEqual(call('::ffff:192.0.2.1', 6), { err: null, address: '::ffff:192.0.2.1' });
  for (const [address, family] of [['2001:db8::1', 4], ['192.0.2.1', 6], ['localhost', 4], ['', 4]] as const) {
    const r = call(address, family);
    assert.equal(r.err?.code, 'EINVAL', `${address} / ${family}`);
    assert.match(r.err?.message ?? '', new RegExp(`is not an IPv${family} literal`));
  }
});

test('a udp4 socket with it binds and sends replies to the sender', async (t) => {
  const server = dgram.createSocket({ type: 'udp4', lookup: literalLookup });
  const client = dgram.createSocket('udp4');
  t.after(() => {
    server.close();
    client.close();
  });
  // With a lookup that answers at once, 'listening' comes within bind(): listen first (bind's callback does).
  const listening = once(server, 'listening');
  server.bind(0, '127.0.0.1');
  await listening;
  server.on('message', (msg, rinfo) => server.send(msg, rinfo.port, rinfo.address));
  client.send(Buffer.from('ping'), server.address().port, '127.0.0.1');
  const [reply] = (await once(client, 'message')) as [Buffer];
  assert.equal(reply.toString(), 'ping');
});
