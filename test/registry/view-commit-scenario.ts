// A scripted run of the registry's view()/commit() cycle, recorded step by
// step: slot ids, fresh and released slots, slot keys, members and what the
// committed view answers. test/registry/view-commit.test.ts replays it and
// compares with the transcript recorded from the code before view() and
// commit() were made cheaper (fixtures/view-commit-transcript.json), so any
// change of their results shows. Regenerate only for an intended change:
//   npx node test/registry/view-commit-scenario.ts > test/registry/fixtures/view-commit-transcript.json

import { parseConfigText } from '../../src/config/load.ts';
import type { CheckSpec } from '../../src/health/types.ts';
import { Registry, type RegistryView, type ServerSpec } from '../../src/registry/registry.ts';

const NONE: CheckSpec = {
  type: 'none', address: '0.0.0.0', port: 80, host: null, path: '/health', expectedStatus: [[200, 399]], headers: {}, bodyMatch: null,
  tlsVerify: true, keepAlive: false, intervalMs: 30_000, timeoutMs: 5000, failureThreshold: 3, successThreshold: 2, emaAlpha: 0.3,
};

function spec(region: string, address: string, service: string | null = null): ServerSpec {
  return { region, address, port: 80, weight: 100, check: { ...NONE, address }, source: 'agent', service };
}

function configOf(domains: string, euServers: string[], extraRegion: boolean): ReturnType<typeof parseConfigText> {
  const eu = euServers.map((a) => `{ address: ${a} }`).join(', ');
  return parseConfigText(`
dns:
  listen_address: "127.0.0.1:0"
  zones: [example.test]
regions:
  - { name: eu, health_check: { type: none }, servers: [${eu}] }
  - { name: us, health_check: { type: none }, servers: [{ address: 198.51.100.1 }, { address: 192.0.2.1 }, { address: 198.51.100.2, port: 8080 }] }
${extraRegion ? '  - { name: ap, health_check: { type: none }, servers: [{ address: 203.0.113.1 }, { address: 2001:db8::1 }] }\n' : ''}domains:
${domains}
logging: { level: error }
`, 'scenario.yaml');
}

/** The step-by-step record of the scenario. */
export function transcript(): unknown[] {
  const out: unknown[] = [];
  const r = new Registry();
  const probes: [string, string][] = [
    ['a.example.test', '192.0.2.1'], ['a.example.test', '198.51.100.1'], ['b.example.test', '192.0.2.2'], ['b.example.test', '10.9.9.9'],
    ['c.example.test', '203.0.113.1'], ['svc.example.test', '192.0.2.50'], ['a.example.test', '192.0.2.50'], ['c.example.test', '2001:db8::1'],
  ];
  const record = (step: string, view: RegistryView, released: number[] | null): void => {
    out.push({
      step,
      version: view.version,
      slotKeys: [...view.slotKeys],
      domains: view.domains.map((d) => ({ name: d.config.name, decisionId: d.decisionId, checkRoundMs: d.checkRoundMs, cnamePool: d.cnamePool, geo: d.geo, members: d.members.map((m) => [m.domain, m.server.key, m.server.slot, m.memberSlot, m.priority]) })),
      served: view.served.map((s) => [s.key, s.slot]),
      checked: view.checked.map((s) => s.key),
      fresh: r.takeFreshSlots(),
      released,
      highWater: r.slotHighWater,
      answers: probes.map(([d, a]) => r.answers(d, a)),
      covered: [
        r.covered({ scope: 'domain', service: 'a.example.test', address: '192.0.2.1' }),
        r.covered({ scope: 'domain', service: 'b.example.test', address: '198.51.100.1' }),
        r.covered({ scope: 'server', address: '192.0.2.2' }),
        r.covered({ scope: 'server', address: '203.0.113.1' }),
        r.covered({ scope: 'region', region: 'ap' }),
        r.covered({ scope: 'region', region: 'us' }),
      ],
      domainsOf: r.servers().map((s) => [s.key, s.slot, [...r.domainsOf(s)]]),
    });
  };
  const cycle = (step: string, free = true): RegistryView => {
    const view = r.view();
    const released = r.commit(view);
    if (free) r.freeSlots(released);
    record(step, view, released);
    return view;
  };
  const two = '  - { name: a.example.test, regions: [eu, us] }\n  - { name: b.example.test, regions: [us, eu], routing_algorithm: geolocation }\n';
  r.applyConfig(configOf(two, ['192.0.2.1', '192.0.2.2'], false));
  cycle('first');
  cycle('again');
  r.applyConfig(configOf(`${two}  - { name: c.example.test, regions: [ap, eu] }\n`, ['192.0.2.1', '192.0.2.3', '192.0.2.2'], true));
  cycle('a domain, a region and a server added');
  r.addServer(spec('eu', '192.0.2.50'));
  r.addServer(spec('eu', '192.0.2.51', 'svc.example.test'));
  r.addServer(spec('us', '192.0.2.52', 'a.example.test'));
  cycle('run-time servers, one bound to a domain that is not configured, one bound to a.example.test');
  r.applyConfig(configOf(`${two}  - { name: svc.example.test, regions: [eu] }\n`, ['192.0.2.3'], false));
  const kept = cycle('servers, a domain and a region removed; slots released but not yet freed', false);
  r.addServer(spec('eu', '192.0.2.60'));
  // A view taken and not committed, then one committed: only the committed one counts.
  r.view();
  r.removeServer('us|192.0.2.52|80|a.example.test');
  cycle('a new server takes no released slot before they are freed');
  const again = r.commit(kept);
  record('an older view committed again', kept, again);
  r.applyConfig(configOf(`${two}  - { name: c.example.test, regions: [ap, eu] }\n`, ['192.0.2.1', '192.0.2.3', '192.0.2.2'], true));
  cycle('back as before: freed slots are reused');
  r.applyConfig(configOf('  - { name: b.example.test, regions: [eu] }\n', ['192.0.2.1'], false));
  cycle('shrunk to one domain');
  return out;
}

if (import.meta.main) process.stdout.write(`${JSON.stringify(transcript(), null, 1)}\n`);
