// The dashboard page (browser side, plain ES module, no framework). Polls the
// admin API every few seconds and redraws: status, the query chart, domains
// with what each answers now (GET /api/v1/explain, asked again only when a
// domain's answer may have moved), regions and
// servers, overrides and agents. Forms set and clear overrides, explain a
// name for a client and test geolocation. Text goes into the page through
// textContent only, never as HTML.

import { ApiError, overridePath, request, storeToken, storedToken } from './api.js';
import { drawChart } from './chart.js';

const POLL_MS = 3000;
const $ = (id) => document.getElementById(id);

/** Makes an element with a class and text (or children). */
function h(tag, cls, content) {
  const node = document.createElement(tag);
  if (cls) node.className = cls;
  if (content === undefined || content === null) return node;
  if (Array.isArray(content)) node.append(...content);
  else if (content instanceof Node) node.append(content);
  else node.textContent = String(content);
  return node;
}

function row(cells, attrs = {}) {
  const tr = document.createElement('tr');
  for (const [k, v] of Object.entries(attrs)) tr.dataset[k] = v;
  for (const c of cells) tr.append(c instanceof Node ? c : h('td', '', c));
  return tr;
}

/** "3 s ago", "5 min ago", "2 h ago", from an RFC 3339 time. */
function ago(iso) {
  if (iso === null || iso === undefined) return '–';
  const s = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000));
  if (s < 90) return `${s} s ago`;
  if (s < 5400) return `${Math.round(s / 60)} min ago`;
  if (s < 172800) return `${Math.round(s / 3600)} h ago`;
  return `${Math.round(s / 86400)} d ago`;
}

function timeCell(iso) {
  const td = h('td', 'time', ago(iso));
  if (iso) td.title = iso;
  return td;
}

function badge(text, kind) {
  return h('span', `badge ${kind ?? text}`, text);
}

// ── notices ──────────────────────────────────────────────────────────────────

let noticeTimer = null;
/** Shows a message at the top; errors stay until the next success, others for 8 s. */
function notify(text, kind) {
  const p = $('notice');
  p.textContent = text;
  p.className = kind;
  $('notice-section').hidden = false;
  clearTimeout(noticeTimer);
  if (kind !== 'error') noticeTimer = setTimeout(() => ($('notice-section').hidden = true), 8000);
}

/** Runs a write; on 401 says why and asks for the token. Returns true when it went through. */
async function write(what, method, path, body) {
  try {
    await request(method, path, body);
    notify(`${what}: done`, 'ok');
    return true;
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) {
      const had = storedToken() !== null;
      notify(`${what}: refused, ${had ? 'the token kept in this tab is wrong' : 'this server needs the API token for writes'} (${err.message}). Enter it below and try again.`, 'error');
      $('token-section').hidden = false;
      $('token-input').focus();
    } else {
      notify(`${what}: ${err.message}`, 'error');
    }
    return false;
  }
}

// ── polling ──────────────────────────────────────────────────────────────────

/** When the last poll that got every answer finished (ms since the epoch), or null before the first. */
let lastOkAt = null;
/** When the polls started failing (ms since the epoch), or null while they succeed. */
let failingSince = null;

/**
 * Marks the page stale (or fresh again): the header says since when the API
 * has not answered and which data is shown; body[data-stale] and the stale
 * class grey out what is no longer live.
 */
function markStale(err) {
  const starting = err instanceof ApiError && err.status === 503;
  if (failingSince === null) failingSince = Date.now();
  const shown = lastOkAt === null ? 'no data yet' : `showing the data of ${new Date(lastOkAt).toLocaleTimeString()} (${ago(new Date(lastOkAt).toISOString())})`;
  const since = new Date(failingSince).toLocaleTimeString();
  const head = starting ? `the overwatch is starting (since ${since})` : `STALE: the API has not answered since ${since}`;
  $('refresh').textContent = `${head}: ${err.message} · ${shown} · retrying every ${POLL_MS / 1000} s`;
  $('refresh').className = 'warn';
  document.body.classList.add('stale');
  document.body.dataset.stale = String(failingSince);
}

let polling = false;
async function poll() {
  if (polling) return;
  polling = true;
  try {
    const [status, domains, servers, regions, overrides, stats, agents] = await Promise.all([
      request('GET', '/api/v1/status'),
      request('GET', '/api/v1/domains'),
      request('GET', '/api/v1/health/servers'),
      request('GET', '/api/v1/health/regions'),
      request('GET', '/api/v1/overrides'),
      request('GET', '/api/v1/stats/queries'),
      request('GET', '/api/v1/overwatch/agents'),
    ]);
    const answers = await answersOf(status, domains.domains, servers.servers);
    renderSummary(status);
    drawChart($('chart'), $('chart-legend'), stats);
    renderDomains(domains.domains, answers);
    renderRegions(regions.regions, servers.servers);
    renderOverrides(overrides.overrides);
    renderAgents(agents);
    lastOkAt = Date.now();
    failingSince = null;
    $('refresh').textContent = `updated ${new Date(lastOkAt).toLocaleTimeString()} · every ${POLL_MS / 1000} s`;
    $('refresh').className = 'muted';
    document.body.classList.remove('stale');
    delete document.body.dataset.stale;
    document.body.dataset.updated = String(lastOkAt);
  } catch (err) {
    markStale(err);
  } finally {
    polling = false;
  }
}

// What each domain answers now comes from GET /api/v1/explain, one call per
// domain. Calling it for every domain on every poll is N calls every 3 s, so
// an answer is asked again only when what it depends on may have changed:
// the snapshot generation (a reload or any other rebuild) or the
// status, authority or override of one of the domain's servers (all in
// GET /api/v1/domains, which the poll reads anyway), and for a latency
// domain its servers' check latency and samples (GET /api/v1/health/servers,
// read anyway too): they move its answer with nothing else changing, and
// a 30 s old answer showed the wrong server that long. Last-up times move
// without any of that, so an answer is also asked again once it is
// EXPLAIN_MAX_AGE_MS old. Changed domains go first, then the oldest answers.
// The calls are bounded by time, not by count: one takes about a
// millisecond, and 20 a poll left the last of 300 domains unexplained for
// 45 s and every answer past the 200th older than 30 s. At most
// EXPLAIN_PARALLEL run at once, and none starts once the poll has spent
// EXPLAIN_BUDGET_MS on them, so a slow API gets a few calls a poll, not N.
const EXPLAIN_MAX_AGE_MS = 30_000;
const EXPLAIN_PARALLEL = 4;
const EXPLAIN_BUDGET_MS = 1000;
/** Domain name → { key, at, answer } of its last explained answer. */
const explained = new Map();

/** What the answer of domain `d` depends on, as one string; `checks` maps region|address|port to the server's view in GET /api/v1/health/servers. */
function explainKey(generation, d, checks) {
  return `${generation}|${d.servers.map((s) => {
    const base = `${s.address}/${s.port}/${s.status}/${s.authority}/${s.override === null ? '' : `${s.override.scope}:${s.override.healthy}`}`;
    if (d.algorithm !== 'latency') return base;
    const c = checks.get(`${s.region}|${s.address}|${s.port}`);
    return c === undefined ? base : `${base}/${c.latency_ms}/${c.latency_samples}`;
  }).join(',')}`;
}

/** The answer of each domain, in order: asks explain for those whose answer may have moved, the cached one for the rest. */
async function answersOf(status, domains, servers) {
  const now = Date.now();
  const checks = new Map(servers.map((s) => [`${s.region}|${s.address}|${s.port}`, s]));
  const due = [];
  for (const d of domains) {
    const key = explainKey(status.generation, d, checks);
    const last = explained.get(d.name);
    if (last === undefined || last.key !== key) due.push({ d, key, rank: last === undefined ? -1 : 0, at: last?.at ?? 0 });
    else if (now - last.at >= EXPLAIN_MAX_AGE_MS) due.push({ d, key, rank: 1, at: last.at });
  }
  due.sort((x, y) => x.rank - y.rank || x.at - y.at);
  const started = performance.now();
  let next = 0;
  const lane = async () => {
    while (next < due.length && performance.now() - started < EXPLAIN_BUDGET_MS) {
      const { d, key } = due[next++];
      const answer = await explainDomain(d);
      // A failed call keeps the old answer and its old key, so the next poll asks again.
      if (answer.rcode === 'error' && explained.has(d.name)) continue;
      explained.set(d.name, { key, at: Date.now(), answer });
    }
  };
  await Promise.all(Array.from({ length: EXPLAIN_PARALLEL }, lane));
  const names = new Set(domains.map((d) => d.name));
  for (const name of explained.keys()) if (!names.has(name)) explained.delete(name);
  return domains.map((d) => explained.get(d.name) ?? { key: '', at: 0, answer: { rcode: 'pending', answers: [], selection: 'fixed', error: 'not explained yet: the next refresh asks for more' } });
}

/** What a domain answers now: explain for A, or AAAA when it has only IPv6 servers. */
async function explainDomain(d) {
  const v6 = d.servers.length > 0 && d.servers.every((s) => s.address.includes(':'));
  try {
    return await request('GET', `/api/v1/explain?name=${encodeURIComponent(d.name)}&type=${v6 ? 'AAAA' : 'A'}`);
  } catch (err) {
    return { rcode: 'error', answers: [], selection: 'fixed', error: err.message };
  }
}

// ── rendering ────────────────────────────────────────────────────────────────

function renderSummary(s) {
  const reload = s.last_failed_reload === null ? 'no failed reload' : `last reload FAILED ${ago(s.last_failed_reload.at)}: ${s.last_failed_reload.message}`;
  $('summary').textContent = `version ${s.version} · snapshot generation ${s.generation} · config ${s.config.file ?? '(not from a file)'} loaded ${ago(s.config.loaded_at)} · reloads ${s.reloads.success} ok, ${s.reloads.failure} failed · ${reload}`;
  $('summary').className = s.last_failed_reload === null ? 'muted' : 'warn';
}

function renderDomains(domains, answers) {
  const body = $('domains').tBodies[0];
  const rows = domains.map((d, i) => {
    const ex = answers[i].answer;
    const answer = h('td', `answer rc-${String(ex.rcode).toLowerCase()}`);
    const list = ex.answers.length === 0 ? ex.rcode : `${ex.answers.join(', ')}${ex.selection === 'fixed' ? '' : ` (${ex.selection.replace('_', ' ')})`}`;
    answer.textContent = ex.rcode === 'NOERROR' ? list : `${ex.rcode}${ex.answers.length > 0 ? `: ${list}` : ''}`;
    answer.title = ex.error ?? `explained ${new Date(answers[i].at).toLocaleTimeString()}`;
    const servers = h('td', 'chips', d.servers.map((s) => {
      const chip = badge(`${s.address}`, s.status);
      chip.title = `${s.region} · ${s.status} · decided by ${s.authority}${s.override ? ` (${s.override.scope} override by ${s.override.source})` : ''}`;
      return chip;
    }));
    return row([h('td', 'name', d.name), `${d.algorithm}${d.max_answers > 1 ? ` ×${d.max_answers}` : ''}`, `${d.ttl} s`, d.when_all_down, answer, servers], { domain: d.name, rcode: ex.rcode, answers: ex.answers.join(','), explainedAt: String(answers[i].at) });
  });
  body.replaceChildren(...rows);
}

function authorityOf(s) {
  if (s.authority === 'override') return `override${s.overrides.length > 0 ? ` (${s.overrides.map((o) => `${o.healthy ? 'up' : 'down'} in ${o.service}`).join('; ')})` : ''}`;
  if (s.authority === 'health_check') return 'check';
  return s.authority;
}

function renderRegions(configured, servers) {
  // Agents may report backends in regions the config does not list: count those here.
  const regions = [...configured];
  for (const s of servers) {
    if (regions.some((r) => r.name === s.region)) continue;
    const mine = servers.filter((o) => o.region === s.region);
    regions.push({ name: s.region, total_servers: mine.length, healthy_count: mine.filter((o) => o.status === 'healthy').length });
  }
  const blocks = regions.map((r) => {
    const mine = servers.filter((s) => s.region === r.name);
    const title = h('h3', '', [
      h('span', '', r.name),
      badge(`${r.healthy_count}/${r.total_servers} healthy`, r.healthy_count === 0 && r.total_servers > 0 ? 'unhealthy' : r.healthy_count < r.total_servers ? 'degraded' : 'healthy'),
    ]);
    const table = h('table', 'servers');
    table.append(h('thead', '', row(['Server', 'Health', 'Since', 'Authority', 'Latency', 'Last check', 'Last error', ''].map((t) => h('th', '', t)))));
    const body = h('tbody');
    for (const s of mine) {
      // An IPv6 address in brackets, as the metrics' server label and the logs write it: 2001:db8::1:8443 reads as an address.
      const key = s.address.includes(':') ? `[${s.address}]:${s.port}` : `${s.address}:${s.port}`;
      const health = h('td', 'health', badge(s.status));
      const actions = h('td', 'actions', [
        button('Drain', `Set a server override: ${s.address} down in every domain`, () => setServerOverride(s.address, false)),
        button('Force up', `Set a server override: ${s.address} up in every domain`, () => setServerOverride(s.address, true)),
      ]);
      body.append(row([
        h('td', 'name', key + (s.agent_id ? ` (agent ${s.agent_id})` : '')),
        health,
        timeCell(s.status_since),
        h('td', `authority ${s.authority}`, authorityOf(s)),
        s.latency_ms === null ? '–' : `${s.latency_ms.toFixed(1)} ms`,
        timeCell(s.last_check),
        h('td', 'error', s.last_error ?? ''),
        actions,
      ], { server: key, address: s.address, status: s.status, authority: s.authority }));
    }
    table.append(body);
    return h('div', 'region', [title, table]);
  });
  $('regions').replaceChildren(...blocks);
}

function button(text, title, onClick) {
  const b = h('button', '', text);
  b.type = 'button';
  b.title = title;
  b.addEventListener('click', async () => {
    b.disabled = true;
    try {
      await onClick();
    } finally {
      b.disabled = false;
    }
  });
  return b;
}

async function setServerOverride(address, healthy) {
  const source = $('ov-source').value.trim() || 'dashboard';
  const reason = $('ov-reason').value.trim() || (healthy ? 'forced up from the dashboard' : 'drained from the dashboard');
  if (await write(`override ${address} ${healthy ? 'up' : 'down'}`, 'PUT', overridePath({ scope: 'server', address }), { healthy, source, reason })) await poll();
}

function coversOf(o) {
  if (o.scope === 'domain') return `${o.address} in ${o.service}`;
  if (o.scope === 'server') return `${o.address} in every domain`;
  return `every server of ${o.region}`;
}

function renderOverrides(overrides) {
  const body = $('overrides').tBodies[0];
  if (overrides.length === 0) {
    body.replaceChildren(row([h('td', 'muted', 'none: the health checks decide')]));
    body.rows[0].cells[0].colSpan = 8;
    return;
  }
  body.replaceChildren(...overrides.map((o) => row([
    o.scope,
    h('td', 'name', coversOf(o) + (o.active ? '' : ' (inactive: not served now)')),
    h('td', '', badge(o.healthy ? 'up' : 'down', o.healthy ? 'healthy' : 'unhealthy')),
    h('td', 'text', o.reason),
    h('td', 'text', o.source),
    timeCell(o.created_at),
    o.expires_at === null ? 'until cleared' : new Date(o.expires_at).toLocaleString(),
    h('td', 'actions', button('Clear', 'Delete this override: the checks (or a wider override) decide again', async () => {
      if (await write(`clear override of ${coversOf(o)}`, 'DELETE', overridePath(o))) await poll();
    })),
  ], { scope: o.scope, target: o.scope === 'region' ? o.region : o.address })));
}

function renderAgents(a) {
  const body = $('agents').tBodies[0];
  $('agents-note').textContent = a.channel_enabled ? `${a.agents.length} agent(s); messages accepted: ${Object.entries(a.messages).map(([k, v]) => `${k} ${v}`).join(', ')}` : 'The agent channel is off (no overwatch.gossip.encryption_key).';
  body.replaceChildren(...a.agents.map((g) => row([
    h('td', 'name', g.agent_id),
    g.region,
    h('td', '', badge(g.state, g.state === 'live' ? 'healthy' : g.state === 'stale' ? 'degraded' : 'unknown')),
    h('td', 'text', g.services.join(', ')),
    String(g.backend_count),
    timeCell(g.last_seen),
    !g.load ? '–' : `cpu ${g.load.cpu_percent ?? '–'}% · mem ${g.load.memory_percent ?? '–'}%`,
  ], { agent: g.agent_id })));
}

// ── forms ────────────────────────────────────────────────────────────────────

function showScopeFields() {
  const scope = $('ov-scope').value;
  $('ov-domain-label').hidden = scope !== 'domain';
  $('ov-address-label').hidden = scope === 'region';
  $('ov-region-label').hidden = scope !== 'region';
}

async function submitOverride(event) {
  event.preventDefault();
  const scope = $('ov-scope').value;
  const target = { scope, service: $('ov-domain').value.trim(), address: $('ov-address').value.trim(), region: $('ov-region').value.trim() };
  const body = { healthy: $('ov-healthy').value === 'true', source: $('ov-source').value.trim(), reason: $('ov-reason').value.trim() };
  const expires = $('ov-expires').value.trim();
  if (expires !== '') body.expires_in = expires;
  if (await write(`override of ${coversOf(target)}`, 'PUT', overridePath(target), body)) await poll();
}

async function submitExplain(event) {
  event.preventDefault();
  const q = new URLSearchParams({ name: $('ex-name').value.trim(), type: $('ex-type').value.trim() || 'A' });
  const client = $('ex-client').value.trim();
  if (client !== '') q.set('client', client);
  const out = $('explain-result');
  try {
    const ex = await request('GET', `/api/v1/explain?${q}`);
    const head = h('p', `answer rc-${ex.rcode.toLowerCase()}`, `${ex.rcode}${ex.answers.length > 0 ? `: ${ex.answers.join(', ')}` : ''} · policy ${ex.policy ?? '–'} · ttl ${ex.ttl ?? '–'} s · selection ${ex.selection ?? '–'}`);
    head.id = 'explain-answer';
    const table = h('table', 'candidates');
    table.append(h('thead', '', row(['Candidate', 'Region', 'Status', 'Checks', 'Decided by', 'In the answer', 'Why'].map((t) => h('th', '', t)))));
    const body = h('tbody');
    for (const c of ex.candidates) {
      body.append(row([c.address, c.region ?? '–', h('td', '', badge(c.status)), c.check_status ?? '–', c.authority ?? '–', c.eligible ? 'yes' : 'no', h('td', 'text', c.reason ?? c.detail ?? '')]));
    }
    table.append(body);
    out.replaceChildren(head, table, h('ul', 'notes', ex.notes.map((n) => h('li', '', n))));
  } catch (err) {
    out.replaceChildren(h('p', 'error', err.message));
  }
}

async function submitGeo(event) {
  event.preventDefault();
  const out = $('geo-result');
  try {
    const g = await request('GET', `/api/v1/geo/test?ip=${encodeURIComponent($('geo-ip').value.trim())}`);
    const p = h('p', '', `${g.ip} → region ${g.region ?? '(none)'} by ${g.match_type}${g.matched_cidr ? ` (${g.matched_cidr})` : ''}${g.country ? ` · country ${g.country}` : ''}${g.continent ? ` · continent ${g.continent}` : ''}${g.geoip_network ? ` · GeoIP network ${g.geoip_network}` : ''}`);
    p.id = 'geo-answer';
    out.replaceChildren(p);
  } catch (err) {
    out.replaceChildren(h('p', 'error', err.message));
  }
}

function submitToken(event) {
  event.preventDefault();
  storeToken($('token-input').value);
  $('token-input').value = '';
  $('token-section').hidden = true;
  notify('token kept for this tab; try the write again', 'ok');
}

$('ov-scope').addEventListener('change', showScopeFields);
$('override-form').addEventListener('submit', submitOverride);
$('explain-form').addEventListener('submit', submitExplain);
$('geo-form').addEventListener('submit', submitGeo);
$('token-form').addEventListener('submit', submitToken);
$('token-forget').addEventListener('click', () => {
  storeToken(null);
  notify('token forgotten', 'ok');
});
showScopeFields();
poll();
setInterval(poll, POLL_MS);
