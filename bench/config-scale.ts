// Cold path: what a big config costs the main thread, step by step. Builds
// one of three configs in memory and times each step a start or a reload
// takes, in the order the overwatch runs them: parse (YAML, includes and
// ${VAR} expansion), validate (the schema walk and the cross-checks), build
// (the normalised Config), registry (applyConfig), view, compile (model,
// encode, pack: the snapshot) and publish (zone digests, health-check
// targets, member table, registry commit). Prints one line per step, in ms.
//
//   npx node bench/config-scale.ts --case domains [--domains 20000 --servers 200]
//   npx node bench/config-scale.ts --case geo [--mappings 100000]
//   npx node bench/config-scale.ts --case regions [--regions 10000]
//
// No sockets, no workers: the query path is measured by bench/micro.ts.

import { parseArgs } from 'node:util';
import { buildConfig, checkCrossReferences } from '../src/config/build.ts';
import { CONFIG_SCHEMA } from '../src/config/definition.ts';
import { readConfigText } from '../src/config/includes.ts';
import { ProblemCollector } from '../src/config/problem-collector.ts';
import type { Value } from '../src/config/schema.ts';
import type { ConfigFile } from '../src/config/definition.ts';
import { validateTree } from '../src/config/validate.ts';
import { buildCheckTargets } from '../src/overwatch/check-targets.ts';
import { zoneDigests } from '../src/overwatch/zone-serials.ts';
import { Registry } from '../src/registry/registry.ts';
import { encodeSnapshot } from '../src/snapshot/encode.ts';
import { modelSnapshot } from '../src/snapshot/model.ts';
import { packSnapshot } from '../src/snapshot/pack.ts';

const { values } = parseArgs({
  options: {
    case: { type: 'string', default: 'domains' },
    domains: { type: 'string', default: '20000' },
    servers: { type: 'string', default: '200' },
    mappings: { type: 'string', default: '100000' },
    regions: { type: 'string', default: '10000' },
  },
});

/** The config text of the case asked for. */
function configText(): string {
  const head = 'dns:\n  listen_address: "127.0.0.1:0"\n  zones: [example.test]\n  nameservers: [{ name: ns1.example.test, addresses: [192.0.2.53] }]\nlogging: { level: error }\n';
  if (values.case === 'domains') {
    const nd = Number(values.domains);
    const ns = Number(values.servers);
    const servers = Array.from({ length: ns }, (_, i) => `      - { address: 10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255} }`).join('\n');
    const domains = Array.from({ length: nd }, (_, i) => `  - { name: d${i}.example.test, regions: [eu] }`).join('\n');
    return `${head}regions:\n  - name: eu\n    health_check: { type: none }\n    servers:\n${servers}\ndomains:\n${domains}\n`;
  }
  if (values.case === 'geo') {
    const n = Number(values.mappings);
    const mappings = Array.from({ length: n }, (_, i) => `      - { cidr: "10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}/32", region: ${i % 2 === 0 ? 'eu' : 'us'} }`).join('\n');
    return `${head}regions:\n  - { name: eu, health_check: { type: none }, servers: [{ address: 192.0.2.1 }] }\n  - { name: us, health_check: { type: none }, servers: [{ address: 192.0.2.2 }] }\ndomains:\n  - { name: geo.example.test, regions: [eu, us], routing_algorithm: geolocation }\noverwatch:\n  geolocation:\n    custom_mappings:\n${mappings}\n`;
  }
  if (values.case === 'regions') {
    const n = Number(values.regions);
    const regions = Array.from({ length: n }, (_, i) => `  - { name: r${i}, health_check: { type: none }, servers: [{ address: 10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255} }] }`).join('\n');
    const domains = Array.from({ length: n }, (_, i) => `  - { name: g${i}.example.test, regions: [r${i}], routing_algorithm: geolocation }`).join('\n');
    return `${head}regions:\n${regions}\ndomains:\n${domains}\n`;
  }
  throw new Error(`--case ${values.case}: expected domains, geo or regions`);
}

// Wall time and the process's CPU time (user + system) of each step: on a
// shared machine the CPU time is the steadier figure.
const figures: [string, number, number][] = [];
function timed<T>(step: string, run: () => T): T {
  const cpu = process.cpuUsage();
  const started = performance.now();
  const result = run();
  const used = process.cpuUsage(cpu);
  figures.push([step, performance.now() - started, (used.user + used.system) / 1000]);
  return result;
}

const text = configText();
const sources = timed('parse', () => readConfigText(text, 'scale.yaml', {}));
const sink = new ProblemCollector('scale.yaml');
const tree = timed('validate', () => {
  const t = validateTree(sources.root, sources.origins, CONFIG_SCHEMA, sink);
  checkCrossReferences(t as never, sink);
  return t;
});
if (sink.problems.length > 0) throw new Error(sink.problems.map((p) => p.message).join('\n'));
const config = timed('build', () => buildConfig(tree as Value<ConfigFile>, '/scale.yaml'));
const registry = new Registry();
timed('registry', () => registry.applyConfig(config));
const view = timed('view', () => registry.view());
const model = timed('compile: model', () => modelSnapshot(view));
const encoded = timed('compile: encode', () => encodeSnapshot(model, () => 1, undefined));
const buffer = timed('compile: pack', () => packSnapshot(model, encoded, 1));
timed('publish: zone digests', () => zoneDigests(view));
timed('publish: check targets', () => buildCheckTargets(view));
timed('publish: registry commit', () => registry.commit(view));
timed('view again (a republish)', () => registry.view());

const total = figures.reduce((s, [, ms]) => s + ms, 0);
const totalCpu = figures.reduce((s, [, , ms]) => s + ms, 0);
console.log(`case ${values.case}: ${config.domains.length} domains, ${config.regions.length} regions, ${registry.servers().length} servers, snapshot ${buffer.byteLength} bytes`);
console.log(`${'step'.padEnd(28)} ${'wall ms'.padStart(10)} ${'cpu ms'.padStart(10)}`);
for (const [step, ms, cpu] of figures) console.log(`${step.padEnd(28)} ${ms.toFixed(1).padStart(10)} ${cpu.toFixed(1).padStart(10)}`);
console.log(`${'total'.padEnd(28)} ${total.toFixed(1).padStart(10)} ${totalCpu.toFixed(1).padStart(10)}`);
