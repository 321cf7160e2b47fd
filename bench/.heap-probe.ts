// temporary, not committed
import { randomBytes } from 'node:crypto';
import { writeHeapSnapshot } from 'node:v8';
import { launchServer } from '../test/helpers/server.ts';
import { AgentsSim, fleetLayout } from './agents-sim.ts';
const N = Number(process.argv[2] ?? 1000);
const key = randomBytes(32);
const TOKEN = 'agents-scale-token-0123456789';
const REGIONS = ['eu', 'us', 'ap', 'sa'];
const layout = fleetLayout({ regions: REGIONS, backends: 3, services: 50, domain: 'example.test', probes: 8 });
const yaml = [
  'dns: { listen_address: "127.0.0.1:0", workers: 1, zones: [example.test] }',
  'regions:', ...REGIONS.map((r) => `  - { name: ${r}, servers: [] }`),
  'domains:', ...layout.serviceNames.map((n) => `  - { name: ${n}, regions: [${REGIONS.join(', ')}], max_answers: 8 }`),
  'overwatch:', '  data_dir: /tmp/fleet-heap/state', '  agent_tokens:', ...layout.serviceNames.map((n) => `    ${n}: ${TOKEN}`),
  `  gossip: { encryption_key: "${key.toString('base64')}", bind_address: "127.0.0.1:0" }`,
  'logging: { level: error }',
].join('\n');
const s = await launchServer(yaml, '/tmp/fleet-heap/ow.yaml');
const port = (s.overwatch.agents as any).receiver.port;
const sim = new AgentsSim({ overwatches: [{ host: '127.0.0.1', port }], key, token: TOKEN, agents: N, regionOf: layout.regionOf, backendsOf: layout.backendsOf, intervalMs: 10000, fullIntervalMs: 30000 });
await sim.prepare();
global.gc?.();
const m0 = process.memoryUsage();
await sim.start(500);
await new Promise((r) => setTimeout(r, 5000));
const g0 = s.overwatch.generation; const st0 = (s.overwatch as any).presignStats();const p0 = st0?.plans; const sig0 = st0?.signatures;
await new Promise((r) => setTimeout(r, 30000));
const st1 = (s.overwatch as any).presignStats();
console.log('generations in 30 s', s.overwatch.generation - g0, 'plans', st1?.plans - p0, 'signatures', st1?.signatures - sig0, 'lastPlanned', st1?.lastPlanned);
global.gc?.();
const m1 = process.memoryUsage();
console.log('heapUsed delta MB', Math.round((m1.heapUsed - m0.heapUsed) / 1048576), 'external', Math.round((m1.external - m0.external) / 1048576), 'presign held', (s.overwatch as any).dnssecStatus?.()?.presign);
const file = writeHeapSnapshot('/tmp/fleet-heap/ow.heapsnapshot');
console.log(file);
sim.stop();
await s.overwatch.stop(200);
process.exit(0);
