// Bench only, main thread, cold. What one GET /metrics costs a real overwatch
// with many servers (default 10 000 in 10 regions, TCP health checks against
// a loopback listener): per scrape, the time of registry.metrics() (collect
// and format, all on the main thread), the HTTP scrape's time, the size, and
// the longest event-loop stall seen while it ran.
//
// Usage: npx node bench/metrics-scale.ts [--servers 10000] [--regions 10] [--scrapes 15] [--out FILE] [--json]
//          --out writes the first scrape's text to FILE (to compare expositions before and after a change).
//
//   bench ──Overwatch.start(N servers, type tcp, interval 5 s)──► health rounds to 127.R.x.y:P
//     │                                                           (one net server on P; loopback only)
//     └─ after the first rounds: S times { registry.metrics() timed; GET /metrics timed } 1 s apart

import { writeFileSync } from 'node:fs';
import net, { type AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import { parseArgs } from 'node:util';
import { parseConfigText } from '../src/config/load.ts';
import { createLogger } from '../src/log/logger.ts';
import { createMetrics } from '../src/metrics/prometheus.ts';
import { startMetricsServer } from '../src/metrics/server.ts';
import { Overwatch } from '../src/overwatch/overwatch.ts';

const { values: args } = parseArgs({
  options: {
    servers: { type: 'string', default: '10000' },
    regions: { type: 'string', default: '10' },
    scrapes: { type: 'string', default: '15' },
    out: { type: 'string' },
    json: { type: 'boolean', default: false },
  },
});
const servers = Number(args.servers);
const regionCount = Number(args.regions);
const scrapes = Number(args.scrapes);

const quiet = createLogger({ level: 'error', format: 'json' }, new Writable({ write: (_c, _e, done) => done() }));
// One TCP listener stands in for every backend: each server has its own 127/8 address, all on this port.
const backend = net.createServer((socket) => {
  if (!(socket.remoteAddress ?? '').startsWith('127.')) socket.destroy();
  else socket.end();
});
await new Promise<void>((resolve) => backend.listen(0, '0.0.0.0', resolve));
const port = (backend.address() as AddressInfo).port;

let yaml = 'dns: { listen_address: "127.0.0.1:0", workers: 2, zones: [example.test] }\nregions:\n';
const perRegion = Math.ceil(servers / regionCount);
for (let r = 0; r < regionCount; r++) {
  yaml += `  - name: r${r}\n    health_check: { type: tcp, interval: 5s, timeout: 1s }\n    servers:\n`;
  for (let i = 0; i < perRegion && r * perRegion + i < servers; i++) yaml += `      - { address: 127.${10 + r}.${(i >> 8) & 255}.${i & 255}, port: ${port} }\n`;
}
yaml += 'domains:\n';
for (let r = 0; r < regionCount; r++) yaml += `  - { name: d${r}.example.test, regions: [r${r}] }\n`;
yaml += 'logging: { level: error }\n';

const metrics = createMetrics({ version: 'bench', loadedAtMs: Date.now() });
const overwatch = await Overwatch.start(parseConfigText(yaml, 'metrics-scale.yaml'), quiet, { healthChecks: 'run', onCheck: metrics.onCheck });
metrics.attach(overwatch);
const listener = await startMetricsServer(metrics.registry, '127.0.0.1', 0, quiet);

let stall = 0;
let last = performance.now();
const lag = setInterval(() => {
  const now = performance.now();
  stall = Math.max(stall, now - last - 10);
  last = now;
}, 10);
// Let a few health rounds land first, as on a running overwatch.
await new Promise((r) => setTimeout(r, 6000));

const collectMs: number[] = [];
const httpMs: number[] = [];
const stalls: number[] = [];
let bytes = 0;
let lines = 0;
for (let k = 0; k < scrapes; k++) {
  const t0 = performance.now();
  const text = await metrics.registry.metrics();
  collectMs.push(performance.now() - t0);
  await new Promise((r) => setTimeout(r, 200));
  stall = 0;
  const t1 = performance.now();
  const body = await (await fetch(`http://127.0.0.1:${listener.port}/metrics`)).text();
  httpMs.push(performance.now() - t1);
  stalls.push(stall);
  if (k === 0) {
    bytes = body.length;
    lines = body.split('\n').length;
    if (args.out !== undefined) writeFileSync(args.out, text);
  }
  await new Promise((r) => setTimeout(r, 800));
}
clearInterval(lag);

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 === 1 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const figures = {
  servers,
  regions: regionCount,
  scrapes,
  bytes,
  lines,
  collect_ms_median: Number(median(collectMs).toFixed(1)),
  collect_ms_max: Number(Math.max(...collectMs).toFixed(1)),
  http_ms_median: Number(median(httpMs).toFixed(1)),
  stall_ms_median: Number(median(stalls).toFixed(1)),
  stall_ms_max: Number(Math.max(...stalls).toFixed(1)),
};
if (args.json) console.log(JSON.stringify(figures));
else {
  console.log(`${servers} servers in ${regionCount} regions: ${lines} lines, ${bytes} bytes`);
  console.log(`registry.metrics(): median ${figures.collect_ms_median} ms, max ${figures.collect_ms_max} ms`);
  console.log(`GET /metrics: median ${figures.http_ms_median} ms; event-loop stall during it: median ${figures.stall_ms_median} ms, max ${figures.stall_ms_max} ms`);
}

await listener.close();
metrics.close();
await overwatch.stop(500);
backend.close();
