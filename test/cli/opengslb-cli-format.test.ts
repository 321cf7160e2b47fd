// White-box tests of opengslb-cli's text output: the table layout and each
// command's formatter, on fixed API responses shaped as src/overwatch/views.ts
// says the API serves them.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { DomainView, OverrideView, ServerView } from '../../src/overwatch/views.ts';
import { apiUrl } from '../../src/cli/admin/client.ts';
import {
  formatAge,
  formatDomains,
  formatLatency,
  formatOverrideCleared,
  formatOverrides,
  formatOverrideSet,
  formatServers,
  formatStatus,
  formatAgents,
  formatAgent,
} from '../../src/cli/admin/format.ts';
import { formatFields, formatTable } from '../../src/cli/admin/table.ts';
import { formatExplain } from '../../src/cli/admin/explain-format.ts';
import { formatRollover } from '../../src/cli/admin/dnssec-commands.ts';
import type { ExplainCandidate, Explanation } from '../../src/overwatch/explain.ts';

const NOW = '2025-06-01T12:00:00.000Z';

function server(over: Partial<ServerView>): ServerView {
  return {
    address: '192.0.2.10',
    port: 80,
    region: 'eu-west',
    domains: ['app.example.test'],
    source: 'config',
    service: null,
    agent_id: null,
    status: 'healthy',
    healthy: true,
    authority: 'health_check',
    check_type: 'http',
    last_check: '2025-06-01T11:59:53.000Z',
    status_since: '2025-06-01T11:40:03.000Z',
    last_healthy: '2025-06-01T11:59:53.000Z',
    last_error: null,
    consecutive_failures: 0,
    consecutive_successes: 4,
    latency_ms: 12.34,
    latency_samples: 4,
    overrides: [],
    ...over,
  };
}

const MAINTENANCE: OverrideView = {
  scope: 'domain',
  service: 'app.example.test',
  address: '2001:db8::1',
  region: null,
  healthy: false,
  reason: 'maintenance',
  source: 'alice@ops1',
  created_at: '2025-06-01T11:00:00.000Z',
  expires_at: null,
  authority: 'override',
  active: true,
};

/** A region drain with an end. */
const REGION_DRAIN: OverrideView = {
  ...MAINTENANCE,
  scope: 'region',
  service: null,
  address: null,
  region: 'us-east',
  reason: 'network work',
  expires_at: '2025-06-01T14:00:00.000Z',
};

test('formatTable pads every column to its widest cell and leaves no trailing spaces', () => {
  const text = formatTable(['A', 'LONG-HEADER', 'C'], [['wide cell', 'x', ''], ['y', 'z', 'last']]);
  assert.equal(text, ['A          LONG-HEADER  C', 'wide cell  x', 'y          z            last', ''].join('\n'));
});

test('formatTable indents every line, the header too', () => {
  assert.equal(formatTable(['K', 'V'], [['a', 'b']], '  '), '  K  V\n  a  b\n');
});

test('formatFields aligns the values after the longest key and its colon', () => {
  assert.equal(formatFields([['Ready', 'yes'], ['Overrides', '0 active']]), 'Ready:      yes\nOverrides:  0 active\n');
});

for (const c of [
  { name: 'one decimal for a fraction', input: 12.34, expect: '12.3ms' },
  { name: 'one decimal for a whole number', input: 3, expect: '3.0ms' },
  { name: 'a dash before the first measurement', input: null, expect: '-' },
]) {
  test(`formatLatency prints ${c.name}`, () => assert.equal(formatLatency(c.input), c.expect));
}

for (const c of [
  { name: 'seconds under a minute', input: '2025-06-01T11:59:53.000Z', expect: '7s ago' },
  { name: 'minutes under an hour', input: '2025-06-01T11:55:00.000Z', expect: '5m ago' },
  { name: 'hours under a day', input: '2025-06-01T09:00:00.000Z', expect: '3h ago' },
  { name: 'days beyond', input: '2025-05-29T12:00:00.000Z', expect: '3d ago' },
  { name: '0s for a time after generated_at (clock skew between threads)', input: '2025-06-01T12:00:01.000Z', expect: '0s ago' },
  { name: 'a dash for never', input: null, expect: '-' },
]) {
  test(`formatAge prints ${c.name}`, () => assert.equal(formatAge(c.input, NOW), c.expect));
}

test('apiUrl joins the base URL and path, drops unset query parameters and encodes the rest', () => {
  assert.equal(apiUrl('http://127.0.0.1:8080/', '/api/v1/health/servers', { domain: 'a b', region: undefined }), 'http://127.0.0.1:8080/api/v1/health/servers?domain=a+b');
  assert.equal(apiUrl('http://[::1]:9/base', '/api/v1/x'), 'http://[::1]:9/base/api/v1/x');
});

test('formatServers prints one aligned row per server with latency, age of the last check and last error', () => {
  const text = formatServers(
    {
      generated_at: NOW,
      servers: [
        server({}),
        server({ address: '2001:db8::1', port: 8080, region: 'us-east', status: 'unhealthy', healthy: false, latency_ms: null, last_error: 'connect ECONNREFUSED', last_check: '2025-06-01T11:58:00.000Z' }),
        server({ address: '192.0.2.99', region: 'us-east', status: 'unknown', healthy: false, check_type: 'none', authority: 'unchecked', latency_ms: null, last_check: null }),
      ],
    },
    false,
  );
  assert.equal(
    text,
    [
      'ADDRESS      PORT  REGION   STATUS     AUTHORITY     LATENCY  LAST-CHECK  LAST-ERROR',
      '192.0.2.10   80    eu-west  healthy    health_check  12.3ms   7s ago      -',
      '2001:db8::1  8080  us-east  unhealthy  health_check  -        2m ago      connect ECONNREFUSED',
      '192.0.2.99   80    us-east  unknown    unchecked     -        -           -',
      '',
    ].join('\n'),
  );
});

test('formatServers lists the overrides of overridden servers below the table, per domain, with scope and end', () => {
  const o = { service: 'app.example.test', scope: 'region' as const, healthy: false, reason: 'maintenance', source: 'alice@ops1', expires_at: '2025-06-01T14:00:00.000Z' };
  const text = formatServers({ generated_at: NOW, servers: [server({ authority: 'override', overrides: [o] })] }, false);
  assert.match(text, /^192\.0\.2\.10\s+80\s+eu-west\s+healthy\s+override\s/m);
  assert.match(text, /\n {2}SERVICE\s+ADDRESS\s+PORT\s+FORCED\s+SCOPE\s+UNTIL\s+REASON\s+SOURCE\n {2}app\.example\.test\s+192\.0\.2\.10\s+80\s+unhealthy\s+region\s+2025-06-01T14:00:00\.000Z\s+maintenance\s+alice@ops1\n$/);
});

test('formatServers says so when there are no servers, or none match the filters', () => {
  assert.equal(formatServers({ generated_at: NOW, servers: [] }, false), 'No servers.\n');
  assert.equal(formatServers({ generated_at: NOW, servers: [] }, true), 'No servers match.\n');
});

function domain(over: Partial<DomainView>): DomainView {
  return {
    name: 'app.example.test',
    zone: 'example.test',
    algorithm: 'round-robin',
    ttl: 30,
    max_answers: 1,
    when_all_down: 'servfail',
    fallback: [],
    servers: [
      { address: '192.0.2.10', port: 80, region: 'eu-west', weight: 100, priority: 0, status: 'healthy', authority: 'health_check', override: null },
      { address: '2001:db8::1', port: 80, region: 'us-east', weight: 50, priority: 1, status: 'unhealthy', authority: 'override', override: MAINTENANCE },
      { address: '192.0.2.20', port: 80, region: 'us-east', weight: 50, priority: 1, status: 'unhealthy', authority: 'override', override: REGION_DRAIN },
    ],
    ...over,
  };
}

test('formatDomains prints one row per domain with healthy/total servers and the all-down behaviour', () => {
  const text = formatDomains({ generated_at: NOW, domains: [domain({}), domain({ name: 'status.example.test', algorithm: 'failover', ttl: 60, when_all_down: 'fallback', fallback: ['192.0.2.99', '192.0.2.98'], servers: [] })] }, false);
  assert.equal(
    text,
    [
      'NAME                 ALGORITHM    TTL  SERVERS  WHEN-ALL-DOWN',
      'app.example.test     round-robin  30   1/3      servfail',
      'status.example.test  failover     60   0/0      fallback 192.0.2.99,192.0.2.98',
      '',
    ].join('\n'),
  );
});

test('formatDomains with servers prints each domain with its servers indented below, overrides with reason, source, wider scope and end', () => {
  const text = formatDomains({ generated_at: NOW, domains: [domain({})] }, true);
  assert.equal(
    text,
    [
      'NAME              ALGORITHM    TTL  SERVERS  WHEN-ALL-DOWN',
      'app.example.test  round-robin  30   1/3      servfail',
      '  ADDRESS      PORT  REGION   WEIGHT  PRIORITY  STATUS     AUTHORITY     OVERRIDE',
      '  192.0.2.10   80    eu-west  100     0         healthy    health_check  -',
      '  2001:db8::1  80    us-east  50      1         unhealthy  override      maintenance (alice@ops1)',
      '  192.0.2.20   80    us-east  50      1         unhealthy  override      network work (alice@ops1; region us-east; until 2025-06-01T14:00:00.000Z)',
      '',
    ].join('\n'),
  );
});

test('formatOverrides prints every override with its scope, target, whether it is active and its end, or says there are none', () => {
  assert.equal(formatOverrides({ overrides: [] }), 'No overrides.\n');
  assert.equal(
    formatOverrides({
      overrides: [
        MAINTENANCE,
        { ...MAINTENANCE, service: 'old.example.test', address: '192.0.2.7', healthy: true, active: false, reason: 'pin' },
        { ...MAINTENANCE, scope: 'server', service: null, address: '192.0.2.8', reason: 'disk' },
        REGION_DRAIN,
      ],
    }),
    [
      'SCOPE   TARGET                           FORCED     ACTIVE  UNTIL                     REASON        SOURCE      CREATED',
      'domain  2001:db8::1 in app.example.test  unhealthy  yes     -                         maintenance   alice@ops1  2025-06-01T11:00:00.000Z',
      'domain  192.0.2.7 in old.example.test    healthy    no      -                         pin           alice@ops1  2025-06-01T11:00:00.000Z',
      'server  192.0.2.8 in every domain        unhealthy  yes     -                         disk          alice@ops1  2025-06-01T11:00:00.000Z',
      'region  region us-east                   unhealthy  yes     2025-06-01T14:00:00.000Z  network work  alice@ops1  2025-06-01T11:00:00.000Z',
      '',
    ].join('\n'),
  );
});

test('formatOverrideSet confirms what was stored, with its end, and warns when it does not apply to the served config', () => {
  assert.equal(formatOverrideSet(MAINTENANCE), 'Override set: 2001:db8::1 in app.example.test is unhealthy (reason: maintenance; source: alice@ops1; at 2025-06-01T11:00:00.000Z)\n');
  assert.equal(formatOverrideSet(REGION_DRAIN), 'Override set: region us-east is unhealthy until 2025-06-01T14:00:00.000Z (reason: network work; source: alice@ops1; at 2025-06-01T11:00:00.000Z)\n');
  assert.match(formatOverrideSet({ ...MAINTENANCE, active: false }), /\nNot active: nothing it covers is in the served config\./);
});

test('formatOverrideCleared names what was cleared, with its reason when it was listed', () => {
  assert.equal(formatOverrideCleared('2001:db8::1 in app.example.test', null), 'Override cleared: 2001:db8::1 in app.example.test; the health checks decide again, unless a wider override covers it.\n');
  assert.match(formatOverrideCleared('2001:db8::1 in app.example.test', MAINTENANCE), /^Override cleared: 2001:db8::1 in app\.example\.test was forced unhealthy \(reason: maintenance; source: alice@ops1; since /);
  assert.match(formatOverrideCleared('region us-east', REGION_DRAIN), /^Override cleared: region us-east was forced unhealthy \(.*, until 2025-06-01T14:00:00\.000Z\)/);
});

test('formatStatus shows version, readiness, the config serving and the last failed reload, per-region counts with a total, domains and active overrides', () => {
  const text = formatStatus({
    api: 'http://127.0.0.1:8080',
    version: { version: '0.1.0', node_version: 'v24.21.0', platform: 'linux-x64', generated_at: NOW },
    readiness: { ready: false, dns_ready: true, health_ready: false, message: 'first health round still running' },
    regions: {
      generated_at: NOW,
      regions: [
        { name: 'eu-west', total_servers: 2, healthy_count: 1, unhealthy_count: 1, unknown_count: 0, health_percent: 50 },
        { name: 'us-east', total_servers: 2, healthy_count: 0, unhealthy_count: 0, unknown_count: 2, health_percent: 0 },
      ],
    },
    domains: { generated_at: NOW, domains: [domain({})] },
    overrides: { overrides: [MAINTENANCE, { ...MAINTENANCE, address: '192.0.2.7', active: false }] },
    config: {
      version: '0.1.0',
      generation: 4,
      config: { file: 'config/example.yaml', generation: 3, loaded_at: '2025-06-01T11:58:00.000Z' },
      reloads: { success: 2, failure: 1 },
      last_reload: null,
      last_failed_reload: { at: '2025-06-01T11:59:30.000Z', message: 'config/example.yaml:7:21: dns.default_ttl: "soon" is not an integer', problems: 2 },
      generated_at: NOW,
    },
  });
  assert.equal(
    text,
    [
      'OpenGSLB 0.1.0 at http://127.0.0.1:8080',
      'Runtime:      Node v24.21.0, linux-x64',
      'Ready:        no: first health round still running (DNS listening: yes, first health round done: no)',
      'Config:       config/example.yaml, generation 3 (snapshot generation 4), loaded 2025-06-01T11:58:00.000Z (2m ago)',
      'Reloads:      2 succeeded, 1 failed',
      'Last failed:  2025-06-01T11:59:30.000Z (30s ago): config/example.yaml:7:21: dns.default_ttl: "soon" is not an integer (and 1 more problems)',
      'Domains:      1',
      'Overrides:    1 active, 1 waiting for their domain or server to return',
      '',
      'REGION   SERVERS  HEALTHY  UNHEALTHY  UNKNOWN  HEALTHY%',
      'eu-west  2        1        1          0        50.0%',
      'us-east  2        0        0          2        0.0%',
      '(all)    4        1        1          2        25.0%',
      '',
      'Active overrides:',
      '  SCOPE   TARGET                           FORCED     UNTIL  REASON       SOURCE',
      '  domain  2001:db8::1 in app.example.test  unhealthy  -      maintenance  alice@ops1',
      '',
    ].join('\n'),
  );
});

function explanation(over: Partial<Explanation>): Explanation {
  return {
    name: 'api.example.test', type: 'A', client: null, rcode: 'NOERROR', aa: true, zone: 'example.test', domain: 'api.example.test',
    source: 'domain', policy: 'failover', max_answers: 1, when_all_down: 'servfail', ttl: 60, selection: 'fixed', answers: ['192.0.2.10'],
    answer_size: 1, wire: null, rotation: false, cycle: null, probabilities: null, candidates: [], fallback: [], all_down: null, additional: [], notes: [],
    geo: null, generation: 3,
    ...over,
  };
}

function candidate(over: Partial<ExplainCandidate>): ExplainCandidate {
  return {
    address: '192.0.2.10', port: 80, region: 'eu-west', priority: 0, weight: 100, status: 'healthy', check_status: 'healthy',
    authority: 'health_check', override: null, latency_ms: 3.62, samples: 5, last_up: NOW, eligible: true, reason: null, detail: 'position 1',
    ...over,
  };
}

test('formatExplain prints the query, result, policy, answer and TTL, then every candidate with why it is or is not eligible, then the notes', () => {
  const text = formatExplain(
    explanation({
      candidates: [
        candidate({}),
        candidate({ address: '192.0.2.20', region: 'us-east', priority: 1, latency_ms: null, eligible: false, detail: null, reason: 'lower failover level 1 (us-east)' }),
      ],
      notes: ['failover answers the first healthy server'],
    }),
  );
  assert.equal(
    text,
    [
      'Query:   api.example.test A',
      'Result:  NOERROR, authoritative',
      'Zone:    example.test',
      'From:    domain api.example.test',
      'Policy:  failover, max_answers 1, when_all_down servfail',
      'Answer:  192.0.2.10 (the next answer)',
      'TTL:     60 s',
      '',
      'ADDRESS     PORT  REGION   PRIORITY  WEIGHT  STATUS   CHECKS   AUTHORITY     LATENCY  ELIGIBLE  WHY',
      '192.0.2.10  80    eu-west  0         100     healthy  healthy  health_check  3.6ms    yes       position 1',
      '192.0.2.20  80    us-east  1         100     healthy  healthy  health_check  -        no        lower failover level 1 (us-east)',
      '',
      'Notes:',
      '  - failover answers the first healthy server',
      '',
    ].join('\n'),
  );
});

test('formatExplain says when every server is down and what when_all_down does, and lists weighted chances', () => {
  const text = formatExplain(
    explanation({
      policy: 'weighted', selection: 'weighted_random', answers: ['192.0.2.99'], all_down: { mode: 'fallback', answered: true }, fallback: ['192.0.2.99'],
      probabilities: [{ address: '192.0.2.10', weight: 3, first: 0.75, in_answer: null }],
    }),
  );
  assert.match(text, /\nAnswer: +192\.0\.2\.99 \(the pool each answer is drawn from by weight, 1 per answer\)\n/);
  assert.match(text, /\nAll down: +no server is eligible: when_all_down fallback answers\n/);
  assert.match(text, /\nFallback: +192\.0\.2\.99\n/);
  assert.match(text, /\nWeighted chances:\n {2}ADDRESS +WEIGHT +LEADS +IN-ANSWER\n {2}192\.0\.2\.10 +3 +75\.0% +-\n/);
});

test('formatExplain says how big the response is and which UDP clients get it truncated', () => {
  const size = (wire: Explanation['wire']): string | undefined => /\nSize: +([^\n]*)\n/.exec(formatExplain(explanation({ wire })))?.[1];
  assert.equal(size({ bytes: 88, bytes_edns: 99, truncated_without_edns: false, truncated_at_1232: false }), '88 bytes (99 with EDNS): fits UDP without EDNS (512 bytes)');
  assert.equal(
    size({ bytes: 620, bytes_edns: 631, truncated_without_edns: true, truncated_at_1232: false }),
    '620 bytes (631 with EDNS): truncated over UDP for a client without EDNS (512 bytes), which retries over TCP; fits 1232',
  );
  assert.equal(
    size({ bytes: 1500, bytes_edns: 1511, truncated_without_edns: true, truncated_at_1232: true }),
    '1500 bytes (1511 with EDNS): truncated over UDP even for a client offering 1232 bytes; clients retry over TCP',
  );
  // A name too long to write as a query has no size; the field is left out.
  assert.equal(size(null), undefined);
});

test('formatExplain of a refused name prints the result and the notes only', () => {
  const text = formatExplain(
    explanation({
      name: 'x.other', rcode: 'REFUSED', aa: false, zone: null, domain: null, source: null, policy: null, max_answers: null, when_all_down: null,
      ttl: null, selection: null, answers: [], notes: ['x.other is not inside any zone served here'],
    }),
  );
  assert.equal(text, 'Query:   x.other A\nResult:  REFUSED, not authoritative\n\nNotes:\n  - x.other is not inside any zone served here\n');
});

test('formatServers adds a SOURCE column naming the agent and service of agents\' backends, and only then', () => {
  const plain = formatServers({ generated_at: NOW, servers: [server({})] }, false);
  assert.doesNotMatch(plain, /SOURCE/);
  const text = formatServers({ generated_at: NOW, servers: [server({}), server({ address: '10.0.1.15', source: 'agent', service: 'app.example.test', agent_id: 'eu-west-62121cf09caa', authority: 'agent' })] }, false);
  const lines = text.split('\n');
  assert.match(lines[0], /^ADDRESS +PORT +REGION +SOURCE +STATUS +AUTHORITY/);
  assert.match(lines[1], /^192\.0\.2\.10 +80 +eu-west +config +healthy/);
  assert.match(lines[2], /^10\.0\.1\.15 +80 +eu-west +agent eu-west-62121cf09caa → app\.example\.test +healthy +agent/);
});

test('formatAgents lists each agent with its state and age, then the drops by reason; says when the channel is off', () => {
  const agent = {
    agent_id: 'eu-62121cf09caa', region: 'eu', state: 'stale' as const, version: '0.1.0', services: ['app.example.test'], fingerprint: 'ab'.repeat(32),
    first_seen: '2025-06-01T10:00:00.000Z', registered_at: '2025-06-01T10:00:00.000Z', last_seen: '2025-06-01T11:59:00.000Z', heartbeat_age_seconds: 60,
    heartbeat_interval_ms: 10_000, certificate_not_after: '2026-06-01T10:00:00.000Z', revoked_at: null, revoked_reason: null, previous_fingerprint: null, note: null,
    load: { cpu_percent: 12.5, memory_percent: 40, error_rate_per_min: 0 }, backend_count: 2,
  };
  const text = formatAgents({ channel_enabled: true, agents: [agent], messages: { register: 1 }, drops: { replayed: 0, token_mismatch: 3 }, generated_at: NOW });
  assert.equal(text, [
    'AGENT            REGION  STATE  BACKENDS  LAST-SEEN  CERT-UNTIL  SERVICES          VERSION',
    'eu-62121cf09caa  eu      stale  2         1m ago     2026-06-01  app.example.test  0.1.0',
    '',
    'Dropped messages (docs/agents.md says why each is dropped):',
    '  REASON          COUNT',
    '  token_mismatch  3',
    '',
  ].join('\n'));
  assert.match(formatAgents({ channel_enabled: false, agents: [], messages: null, drops: null, generated_at: NOW }), /agent channel is off/);
  const shown = formatAgent({
    agent,
    backends: [{ agent_id: agent.agent_id, service: 'app.example.test', address: '10.0.1.15', port: 8080, weight: 100, region: 'eu', agent_health: 'healthy', drain_reason: 'cpu_threshold_exceeded', state: 'stale', server_key: 'k', problem: null, check_type: 'http' }],
    generated_at: NOW,
  });
  assert.match(shown, /^State: +stale$/m);
  assert.match(shown, /^Load: +cpu 12\.5%, memory 40%, errors 0\/min$/m);
  assert.match(shown, /^app\.example\.test +10\.0\.1\.15 +8080 +100 +healthy, draining: cpu_threshold_exceeded +stale +-$/m);
});

test('formatAgents shows each certificate\'s end (expired ones said so) and, when an agent is revoked, why; agents show says the reason once', () => {
  const base = {
    agent_id: 'eu-62121cf09caa', region: 'eu', state: 'live' as const, version: '0.1.0', services: ['app.example.test'], fingerprint: 'ab'.repeat(32),
    first_seen: '2025-06-01T10:00:00.000Z', registered_at: '2025-06-01T10:00:00.000Z', last_seen: '2025-06-01T11:59:00.000Z', heartbeat_age_seconds: 60,
    heartbeat_interval_ms: 10_000, certificate_not_after: '2026-06-01T10:00:00.000Z', revoked_at: null, revoked_reason: null, previous_fingerprint: null, note: null,
    load: null, backend_count: 0,
  };
  const revoked = {
    ...base, agent_id: 'eu-7a0000000001', state: 'revoked' as const, certificate_not_after: '2025-05-01T00:00:00.000Z',
    revoked_at: '2025-06-01T11:00:00.000Z', revoked_reason: 'host compromised', note: 'revoked: host compromised',
  };
  const lines = formatAgents({ channel_enabled: true, agents: [base, revoked], messages: null, drops: null, generated_at: NOW }).split('\n');
  assert.match(lines[0], /^AGENT +REGION +STATE +BACKENDS +LAST-SEEN +CERT-UNTIL +SERVICES +VERSION +REVOKED-FOR$/);
  assert.match(lines[1], /^eu-62121cf09caa +eu +live +0 +1m ago +2026-06-01 +app\.example\.test +0\.1\.0 +-$/);
  assert.match(lines[2], /^eu-7a0000000001 +eu +revoked +0 +1m ago +2025-05-01 \(expired\) +app\.example\.test +0\.1\.0 +host compromised$/);
  const shown = formatAgent({ agent: revoked, backends: [], generated_at: NOW });
  assert.equal(shown.split('host compromised').length - 1, 1, shown);
  assert.match(shown, /^State: +revoked$/m);
  assert.match(shown, /^Revoked: +2025-06-01T11:00:00\.000Z: host compromised$/m);
});

test('formatRollover says what an algorithm rollover does: the new key signs before it is published, the old one after finish', () => {
  const base = { zone: 'example.test', signing_key: 12482, next_step: 'wait' } as const;
  const start = formatRollover({ ...base, phase: 'published', new_key: 6245, old_keys: [12482], switch_at: '2026-12-06T08:35:00.000Z', publish_at: '2026-12-06T07:30:00.000Z' }, 'start');
  assert.match(start, /^Rollover of example\.test started: key 6245 signs beside the old key and joins the DNSKEY RRset at 2026-12-06T07:30:00\.000Z\.\n/);
  assert.match(start, /\nPublish at: {3}2026-12-06T07:30:00\.000Z\nSwitch at: {4}2026-12-06T08:35:00\.000Z\n/);
  const finish = formatRollover({ ...base, phase: 'withdrawing', signing_key: 6245, new_key: null, old_keys: [12482], switch_at: '2026-12-06T10:05:00.000Z', publish_at: null }, 'finish');
  // "signs alone" would be false for the hour the withdrawn key still signs.
  assert.match(finish, /^Rollover of example\.test finished: key 12482 left the DNSKEY RRset and signs beside key 6245 until 2026-12-06T10:05:00\.000Z, then retires\.\n/);
  assert.match(finish, /\nRetires at: {3}2026-12-06T10:05:00\.000Z\n/);
  assert.doesNotMatch(finish, /Switch at/);
  // A rollover within one algorithm reads as before.
  const plain = formatRollover({ ...base, phase: 'none', new_key: null, old_keys: [], switch_at: null, publish_at: null }, 'finish');
  assert.equal(plain, 'Rollover of example.test finished: key 12482 signs alone.\nZone:         example.test\nPhase:        none\nSigning key:  12482\nNext step:    wait\n');
});
