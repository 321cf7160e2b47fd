// The dashboard page (browser side, plain ES module, no framework). Polls the
// admin API every few seconds and redraws: status, the query chart, domains
// with what each answers now (GET /api/v1/explain, asked again only when a
// domain's answer may have moved), regions and
// servers, overrides and agents. Forms set and clear overrides, explain a
// name for a client and test geolocation. Text goes into the page through
// textContent only, never as HTML. A poll updates the rows of the tables in
// place, keyed, and writes only what changed (see reconcile()): rebuilding
// every row blocked the page 170-380 ms a poll with 3 000 servers.

import { ApiError, overridePath, request, storeToken, storedToken } from './api.js';
import { drawChart } from './chart.js';

const POLL_MS = 3000;
/** The range of ?refresh_ms= in the page's address. */
const MIN_POLL_MS = 250;
const MAX_POLL_MS = 600_000;
const $ = (id) => document.getElementById(id);

/**
 * How often the page polls, in ms: POLL_MS, or the address's ?refresh_ms=
 * (a whole number from MIN_POLL_MS to MAX_POLL_MS; the browser tests poll
 * faster with it rather than wait 3 s a poll). `problem` says why a value
 * given was not taken, or is null.
 */
function readPollMs(search) {
  const raw = new URLSearchParams(search).get('refresh_ms');
  if (raw === null) return { pollMs: POLL_MS, problem: null };
  const ms = /^\d{1,7}$/.test(raw) ? Number(raw) : NaN;
  if (ms >= MIN_POLL_MS && ms <= MAX_POLL_MS) return { pollMs: ms, problem: null };
  return { pollMs: POLL_MS, problem: `refresh_ms=${JSON.stringify(raw)} in the page's address is not a whole number of milliseconds from ${MIN_POLL_MS} to ${MAX_POLL_MS}: refreshing every ${POLL_MS / 1000} s` };
}
const { pollMs, problem: pollProblem } = readPollMs(location.search);

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

// ── keyed updates ────────────────────────────────────────────────────────────

/** Per parent element: key → { el, view } of the children reconcile() manages. */
const managed = new WeakMap();

/**
 * Brings `parent`'s children in line with `items`, one element per key
 * (keyOf): a new key gets make(item); a key seen before keeps its element.
 * viewOf(item) gives the strings the element shows, one per entry of
 * `fields`, whose entry i says where string i goes: [node of the element,
 * property] ('textContent', 'className', 'title', or an attribute
 * 'data-…'). Only the strings that differ from the ones last written are
 * written (the page is never read back); elements of keys gone are removed;
 * an element moves only when the order changed. A row that did not change is
 * not touched: it costs no style or layout pass and keeps the operator's
 * focus and text selection. Returns the elements in the order of `items`.
 */
function reconcile(parent, items, keyOf, viewOf, make, fields) {
  let known = managed.get(parent);
  if (known === undefined) {
    known = new Map();
    parent.replaceChildren();
  }
  const next = new Map();
  const out = [];
  let at = parent.firstChild;
  for (const item of items) {
    let key = keyOf(item);
    // Two items with one key (should the API ever list one twice) each keep a row.
    for (let n = 2; next.has(key); n++) key = `${keyOf(item)}#${n}`;
    let entry = known.get(key);
    if (entry === undefined) entry = { el: make(item), view: [] };
    const view = viewOf(item);
    for (let i = 0; i < fields.length; i++) {
      if (view[i] === entry.view[i]) continue;
      const [nodeOf, prop] = fields[i];
      const node = nodeOf(entry.el);
      if (prop.startsWith('data-')) node.setAttribute(prop, view[i]);
      else node[prop] = view[i];
    }
    entry.view = view;
    next.set(key, entry);
    out.push(entry.el);
    if (entry.el === at) at = at.nextSibling;
    else parent.insertBefore(entry.el, at);
  }
  for (const [key, entry] of known) if (next.get(key) !== entry) entry.el.remove();
  managed.set(parent, next);
  return out;
}

/** A row of empty cells with these classes ('' for none). */
function emptyRow(classes) {
  const tr = document.createElement('tr');
  for (const c of classes) tr.append(h('td', c));
  return tr;
}

/** The element itself, and its i-th cell or that cell's first child (a badge), as a field's node. */
const whole = (el) => el;
const cell = (i) => (tr) => tr.cells[i];
const inCell = (i) => (tr) => tr.cells[i].firstChild;

/** "3 s ago", "5 min ago", "2 h ago", from an RFC 3339 time. */
function ago(iso) {
  if (iso === null || iso === undefined) return '–';
  const s = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000));
  if (s < 90) return `${s} s ago`;
  if (s < 5400) return `${Math.round(s / 60)} min ago`;
  if (s < 172800) return `${Math.round(s / 3600)} h ago`;
  return `${Math.round(s / 86400)} d ago`;
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
  $('refresh').textContent = `${head}: ${err.message} · ${shown} · retrying every ${pollMs / 1000} s`;
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
    $('refresh').textContent = `updated ${new Date(lastOkAt).toLocaleTimeString()} · every ${pollMs / 1000} s`;
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

/** Where each string of a domain row's view goes (renderDomains). */
const DOMAIN_FIELDS = [
  [cell(0), 'textContent'], [cell(1), 'textContent'], [cell(2), 'textContent'], [cell(3), 'textContent'],
  [cell(4), 'className'], [cell(4), 'textContent'], [cell(4), 'title'],
  [whole, 'data-domain'], [whole, 'data-rcode'], [whole, 'data-answers'], [whole, 'data-explained-at'],
];
const CHIP_FIELDS = [[whole, 'className'], [whole, 'textContent'], [whole, 'title']];

function renderDomains(domains, answers) {
  const body = $('domains').tBodies[0];
  const rows = reconcile(body, domains.map((d, i) => ({ d, explained: answers[i] })), ({ d }) => d.name, ({ d, explained }) => {
    const ex = explained.answer;
    const list = ex.answers.length === 0 ? ex.rcode : `${ex.answers.join(', ')}${ex.selection === 'fixed' ? '' : ` (${ex.selection.replace('_', ' ')})`}`;
    return [
      d.name,
      `${d.algorithm}${d.max_answers > 1 ? ` ×${d.max_answers}` : ''}`,
      `${d.ttl} s`,
      d.when_all_down,
      `answer rc-${String(ex.rcode).toLowerCase()}`,
      ex.rcode === 'NOERROR' ? list : `${ex.rcode}${ex.answers.length > 0 ? `: ${list}` : ''}`,
      ex.error ?? `explained ${new Date(explained.at).toLocaleTimeString()}`,
      d.name,
      String(ex.rcode),
      ex.answers.join(','),
      String(explained.at),
    ];
  }, () => emptyRow(['name', '', '', '', 'answer', 'chips']), DOMAIN_FIELDS);
  rows.forEach((tr, i) => reconcile(tr.cells[5], domains[i].servers, (s) => `${s.region}|${s.address}|${s.port}`, (s) => [
    `badge ${s.status}`,
    s.address,
    `${s.region} · ${s.status} · decided by ${s.authority}${s.override ? ` (${s.override.scope} override by ${s.override.source})` : ''}`,
  ], () => h('span'), CHIP_FIELDS));
}

function authorityOf(s) {
  if (s.authority === 'override') return `override${s.overrides.length > 0 ? ` (${s.overrides.map((o) => `${o.healthy ? 'up' : 'down'} in ${o.service}`).join('; ')})` : ''}`;
  if (s.authority === 'health_check') return 'check';
  return s.authority;
}

/** A region's healthy count as a badge kind: none healthy (or no servers at all: it answers nothing), some, or all. */
function regionKind(r) {
  return r.healthy_count === 0 ? 'unhealthy' : r.healthy_count < r.total_servers ? 'degraded' : 'healthy';
}

/** A region's badge text: "2/3 healthy", or why it has nothing to answer with. */
function regionCount(r) {
  return r.total_servers === 0 ? 'no servers (none configured, no agent reports one)' : `${r.healthy_count}/${r.total_servers} healthy`;
}

function renderRegions(configured, servers) {
  const byRegion = new Map();
  for (const s of servers) {
    const mine = byRegion.get(s.region);
    if (mine === undefined) byRegion.set(s.region, [s]);
    else mine.push(s);
  }
  // Agents may report backends in regions the config does not list: count those here.
  const regions = [...configured];
  const named = new Set(configured.map((r) => r.name));
  for (const [name, mine] of byRegion) {
    if (!named.has(name)) regions.push({ name, total_servers: mine.length, healthy_count: mine.filter((o) => o.status === 'healthy').length });
  }
  const blocks = reconcile($('regions'), regions, (r) => r.name, (r) => [r.name, `badge ${regionKind(r)}`, regionCount(r), `auto ${REGION_PX + ROW_PX * (byRegion.get(r.name)?.length ?? 0)}px`], () => {
    const table = h('table', 'servers');
    table.append(h('thead', '', row(['Server', 'Health', 'Since', 'Authority', 'Latency', 'Last check', 'Last error', ''].map((t) => h('th', '', t)))), h('tbody'));
    return h('div', 'region', [h('h3', '', [h('span'), h('span')]), table]);
  }, REGION_FIELDS);
  regions.forEach((r, i) => reconcile(blocks[i].lastChild.tBodies[0], byRegion.get(r.name) ?? [], (s) => `${serverKey(s)}|${s.agent_id ?? ''}`, (s) => [
    serverKey(s) + (s.agent_id ? ` (agent ${s.agent_id})` : ''),
    `badge ${s.status}`,
    s.status,
    ago(s.status_since),
    s.status_since ?? '',
    `authority ${s.authority}`,
    authorityOf(s),
    s.latency_ms === null ? '–' : `${s.latency_ms.toFixed(1)} ms`,
    ago(s.last_check),
    s.last_check ?? '',
    s.last_error ?? '',
    serverKey(s),
    s.address,
    s.status,
    s.authority,
  ], (s) => {
    const tr = emptyRow(['name', 'health', 'time', '', '', 'time', 'error', 'actions']);
    tr.cells[1].append(h('span'));
    tr.cells[7].append(
      button('Drain', `Set a server override: ${s.address} down in every domain`, () => setServerOverride(s.address, false)),
      button('Force up', `Set a server override: ${s.address} up in every domain`, () => setServerOverride(s.address, true)),
    );
    return tr;
  }, SERVER_FIELDS));
}

/** Where each string of a region's title and of a server row goes (renderRegions). */
const REGION_FIELDS = [
  [(div) => div.firstChild.firstChild, 'textContent'], [(div) => div.firstChild.lastChild, 'className'], [(div) => div.firstChild.lastChild, 'textContent'],
  // A region out of sight is not laid out (style.css: content-visibility); until it has been, it takes this height (through the CSSOM: the CSP allows no style attribute).
  [(div) => div.style, 'containIntrinsicSize'],
];
/** A region's title and table head, and one server row, in px as drawn (an estimate: a row with a long error is taller). */
const REGION_PX = 60;
const ROW_PX = 33;
const SERVER_FIELDS = [
  [cell(0), 'textContent'], [inCell(1), 'className'], [inCell(1), 'textContent'], [cell(2), 'textContent'], [cell(2), 'title'],
  [cell(3), 'className'], [cell(3), 'textContent'], [cell(4), 'textContent'], [cell(5), 'textContent'], [cell(5), 'title'], [cell(6), 'textContent'],
  [whole, 'data-server'], [whole, 'data-address'], [whole, 'data-status'], [whole, 'data-authority'],
];

/** A server as the metrics' server label and the logs write it: an IPv6 address in brackets, as 2001:db8::1:8443 reads as an address. */
function serverKey(s) {
  return s.address.includes(':') ? `[${s.address}]:${s.port}` : `${s.address}:${s.port}`;
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

const OVERRIDE_FIELDS = [
  [cell(0), 'textContent'], [cell(1), 'textContent'], [inCell(2), 'className'], [inCell(2), 'textContent'], [cell(3), 'textContent'],
  [cell(4), 'textContent'], [cell(5), 'textContent'], [cell(5), 'title'], [cell(6), 'textContent'], [whole, 'data-scope'], [whole, 'data-target'],
];

function renderOverrides(overrides) {
  const body = $('overrides').tBodies[0];
  if (overrides.length === 0) {
    reconcile(body, [null], () => 'none', () => [], () => {
      const tr = row([h('td', 'muted', 'none: the health checks decide')]);
      tr.cells[0].colSpan = 8;
      return tr;
    }, []);
    return;
  }
  reconcile(body, overrides, (o) => `${o.scope}|${o.service ?? ''}|${o.address ?? ''}|${o.region ?? ''}`, (o) => [
    o.scope,
    coversOf(o) + (o.active ? '' : ' (inactive: not served now)'),
    `badge ${o.healthy ? 'healthy' : 'unhealthy'}`,
    o.healthy ? 'up' : 'down',
    o.reason,
    o.source,
    ago(o.created_at),
    o.created_at ?? '',
    o.expires_at === null ? 'until cleared' : new Date(o.expires_at).toLocaleString(),
    o.scope,
    o.scope === 'region' ? o.region : o.address,
  ], (o) => {
    const tr = emptyRow(['', 'name', '', 'text', 'text', 'time', '', 'actions']);
    tr.cells[2].append(h('span'));
    tr.cells[7].append(button('Clear', 'Delete this override: the checks (or a wider override) decide again', async () => {
      if (await write(`clear override of ${coversOf(o)}`, 'DELETE', overridePath(o))) await poll();
    }));
    return tr;
  }, OVERRIDE_FIELDS);
}

const AGENT_FIELDS = [
  [cell(0), 'textContent'], [cell(1), 'textContent'], [inCell(2), 'className'], [inCell(2), 'textContent'], [cell(3), 'textContent'],
  [cell(4), 'textContent'], [cell(5), 'textContent'], [cell(5), 'title'], [cell(6), 'textContent'], [whole, 'data-agent'],
];

function renderAgents(a) {
  const body = $('agents').tBodies[0];
  $('agents-note').textContent = a.channel_enabled ? `${a.agents.length} agent(s); messages accepted: ${Object.entries(a.messages).map(([k, v]) => `${k} ${v}`).join(', ')}` : 'The agent channel is off (no overwatch.gossip.encryption_key).';
  reconcile(body, a.agents, (g) => g.agent_id, (g) => [
    g.agent_id,
    g.region,
    `badge ${g.state === 'live' ? 'healthy' : g.state === 'stale' ? 'degraded' : 'unknown'}`,
    g.state,
    g.services.join(', '),
    String(g.backend_count),
    ago(g.last_seen),
    g.last_seen ?? '',
    !g.load ? '–' : `cpu ${g.load.cpu_percent ?? '–'}% · mem ${g.load.memory_percent ?? '–'}%`,
    g.agent_id,
  ], () => {
    const tr = emptyRow(['name', '', '', 'text', '', 'time', '']);
    tr.cells[2].append(h('span'));
    return tr;
  }, AGENT_FIELDS);
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
if (pollProblem !== null) notify(pollProblem, 'error');
poll();
setInterval(poll, pollMs);
