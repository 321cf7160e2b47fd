// The overwatch's agents across reloads that remove and re-add their region,
// in this process: agents played by this test over real TCP to the channel.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { test } from 'node:test';
import { parseConfigText } from '../../src/config/load.ts';
import { Keyring } from '../../src/gossip/envelope.ts';
import type { AckMessage } from '../../src/gossip/messages.ts';
import { createLogger } from '../../src/log/logger.ts';
import { Overwatch } from '../../src/overwatch/overwatch.ts';
import { MemoryStore } from '../../src/state/store.ts';
import { ask } from '../helpers/dns-client.ts';
import { backend, newIdentity, sendTcp, TestAgent, tempDir } from '../gossip/helpers.ts';

const APP = 'app.example.test';
const TOKEN = 'app-token-0123456789abcdef';
const quiet = createLogger({ level: 'error', format: 'json' }, new Writable({ write: (_c, _e, done) => done() }));

function yaml(key: string, regions: readonly string[]): string {
  return [
    'dns: { listen_address: "127.0.0.1:0", workers: 1, zones: [example.test] }',
    `regions: [${regions.map((r) => `{ name: ${r}, servers: [] }`).join(', ')}]`,
    `domains: [{ name: ${APP}, regions: [${regions.join(', ')}], max_answers: 4 }]`,
    'overwatch:',
    `  agent_tokens: { ${APP}: ${TOKEN} }`,
    `  gossip: { encryption_key: "${key}", bind_address: "127.0.0.1:0" }`,
  ].join('\n');
}

test('a reload that removes an agent\'s region takes its backends out of answers and listings at once, says why, and re-adding the region brings them back', async (t) => {
  const dir = await tempDir(t);
  const key = randomBytes(32).toString('base64');
  const keyring = Keyring.fromBase64(key);
  const file = join(dir, 'overwatch.yaml');
  const both = ['eu-west', 'us-east'];
  const ow = await Overwatch.start(parseConfigText(yaml(key, both), file), quiet, { store: new MemoryStore(), healthChecks: 'off' });
  t.after(() => ow.stop(200));
  const port = ow.agents?.receiver?.port as number;
  const send = async (bytes: Uint8Array): Promise<AckMessage | null> => (await sendTcp('127.0.0.1', port, [bytes], keyring))[0];
  const answers = async (): Promise<string[]> => (((await ask(ow.port, APP, 'A')).answers ?? []) as { data: string }[]).map((a) => a.data).sort();
  const east = new TestAgent((await newIdentity(t)).identity, keyring, { [APP]: TOKEN });
  const west = new TestAgent((await newIdentity(t)).identity, keyring, { [APP]: TOKEN });
  assert.equal((await send(east.seal(east.register([backend(APP, '192.0.2.10', 80)], undefined, 'us-east'))))?.status, 'ok');
  assert.equal((await send(west.seal(west.register([backend(APP, '192.0.2.20', 80)]))))?.status, 'ok');
  await ow.whenPublished();
  assert.deepEqual(await answers(), ['192.0.2.10', '192.0.2.20']);

  const removed = await ow.reload(parseConfigText(yaml(key, ['eu-west']), file));
  assert.equal(removed.ok, true, removed.message);
  assert.deepEqual(await answers(), ['192.0.2.20'], 'out of answers with the reload\'s snapshot');
  const eastView = ow.agents?.agent(east.identity.agentId)?.backends[0];
  assert.equal(eastView?.state, 'refused');
  assert.match(eastView?.problem ?? '', /no region "us-east" is served here/);

  // The listing keeps the agent's backend, not answered, and says why (the agent's own region is what it names).
  const row = ow.backends().find((b) => b.address === '192.0.2.10');
  assert.equal(row?.answered, false);
  assert.match(row?.note ?? '', /no region "us-east" is served here; expected one of: eu-west/);
  assert.deepEqual(ow.servers().map((s) => s.region), ['eu-west'], 'no server of the removed region is listed (nor in the metrics, which read this list)');
  // Its heartbeats are still taken (it is pinned); its backend stays refused with the same reason.
  // Acked ok (an older agent goes on as before), with the reason that tells the agent its region is not served here.
  const ack = await send(east.seal(east.heartbeat([backend(APP, '192.0.2.10', 80)], false)));
  assert.deepEqual({ status: ack?.status, reason: ack?.reason }, { status: 'ok', reason: 'unknown_region' });
  assert.equal(ow.agents?.agent(east.identity.agentId)?.backends[0]?.state, 'refused');
  assert.equal((await send(west.seal(west.heartbeat([backend(APP, '192.0.2.20', 80)], false))))?.reason, null, 'an agent of a served region: no reason');

  const back = await ow.reload(parseConfigText(yaml(key, both), file));
  assert.equal(back.ok, true, back.message);
  await ow.whenPublished();
  assert.deepEqual(await answers(), ['192.0.2.10', '192.0.2.20'], 'back with the reload: the overwatch holds its agent\'s last report');
  const again = ow.agents?.agent(east.identity.agentId)?.backends[0];
  assert.deepEqual({ state: again?.state, problem: again?.problem }, { state: 'healthy', problem: null });
  assert.equal((await send(east.seal(east.heartbeat([backend(APP, '192.0.2.10', 80)], false))))?.reason, null, 'served again: no reason');
  assert.equal(ow.agents?.counters().refused.registry_refused, 1, 'refused once, however many heartbeats came meanwhile');
});
