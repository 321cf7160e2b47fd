// A small SVG line chart of replies per second by response code, drawn from
// GET /api/v1/stats/queries samples. No library: a polyline per rcode, a
// y axis with a rounded maximum, and time ticks. SVG attributes only (no
// style attributes), so the page's Content-Security-Policy holds.

const SVG = 'http://www.w3.org/2000/svg';
const WIDTH = 1000;
const HEIGHT = 200;
const PAD = { left: 48, right: 8, top: 8, bottom: 22 };
/** The order rcodes are drawn and listed in; any other follows. */
const ORDER = ['NOERROR', 'NXDOMAIN', 'SERVFAIL', 'REFUSED', 'FORMERR', 'NOTIMP'];

function el(name, attrs, text) {
  const node = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  if (text !== undefined) node.textContent = text;
  return node;
}

/** Rounds up to 1, 2 or 5 × a power of ten, so the axis reads well. */
function niceMax(v) {
  if (v <= 0) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

function formatRate(v) {
  return v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2);
}

/**
 * Draws `stats` ({interval_seconds, window_seconds, samples}) into the
 * container (replacing what was there) and fills `legend` with the latest
 * rate per rcode.
 */
export function drawChart(container, legend, stats) {
  const samples = stats.samples;
  const codes = new Set();
  for (const s of samples) for (const c of Object.keys(s.by_rcode)) codes.add(c);
  const series = [...codes].sort((a, b) => rank(a) - rank(b) || a.localeCompare(b));
  let max = 0;
  for (const s of samples) max = Math.max(max, s.queries_per_second);
  const top = niceMax(max);
  const svg = el('svg', { viewBox: `0 0 ${WIDTH} ${HEIGHT}`, class: 'chart-svg', 'data-samples': samples.length });
  const w = WIDTH - PAD.left - PAD.right;
  const h = HEIGHT - PAD.top - PAD.bottom;
  const endMs = samples.length > 0 ? Date.parse(samples[samples.length - 1].at) : Date.now();
  // Until the window has filled (a fresh start), span what there is, at least a minute, so the lines are not squeezed to the right edge.
  const firstMs = samples.length > 0 ? Date.parse(samples[0].at) - samples[0].seconds * 1000 : endMs;
  const spanMs = Math.min(stats.window_seconds * 1000, Math.max(60_000, endMs - firstMs));
  const x = (ms) => PAD.left + w * (1 - (endMs - ms) / spanMs);
  const y = (v) => PAD.top + h * (1 - v / top);

  for (const f of [0, 0.5, 1]) {
    svg.append(el('line', { x1: PAD.left, x2: WIDTH - PAD.right, y1: y(top * f), y2: y(top * f), class: 'grid' }));
    svg.append(el('text', { x: PAD.left - 4, y: y(top * f) + 4, 'text-anchor': 'end', class: 'axis' }, formatRate(top * f)));
  }
  // Time ticks: every 10 s under two minutes of span, else whole minutes, about five of them.
  const spanSec = spanMs / 1000;
  const stepSec = spanSec <= 120 ? 10 * Math.max(1, Math.round(spanSec / 50)) : 60 * Math.max(1, Math.round(spanSec / 300));
  for (let t = 0; t <= spanSec; t += stepSec) {
    const label = t === 0 ? 'now' : stepSec < 60 ? `-${t} s` : `-${t / 60} min`;
    svg.append(el('text', { x: x(endMs - t * 1000), y: HEIGHT - 6, 'text-anchor': t === 0 ? 'end' : 'middle', class: 'axis' }, label));
  }
  for (const code of [...series, 'total']) {
    const points = samples.map((s) => `${x(Date.parse(s.at)).toFixed(1)},${y(code === 'total' ? s.queries_per_second : (s.by_rcode[code] ?? 0)).toFixed(1)}`);
    if (points.length === 0) continue;
    svg.append(el('polyline', { points: points.join(' '), class: `line rc-${code.toLowerCase()}`, 'data-rcode': code }));
  }
  if (samples.length === 0) svg.append(el('text', { x: WIDTH / 2, y: HEIGHT / 2, 'text-anchor': 'middle', class: 'axis' }, `no samples yet (one every ${stats.interval_seconds} s)`));
  container.replaceChildren(svg);

  const last = samples[samples.length - 1];
  const items = [];
  const total = document.createElement('span');
  total.className = 'key rc-total';
  total.textContent = `total ${last === undefined ? '–' : formatRate(last.queries_per_second)}/s`;
  items.push(total);
  for (const code of series) {
    const span = document.createElement('span');
    span.className = `key rc-${code.toLowerCase()}`;
    span.dataset.rcode = code;
    span.textContent = `${code} ${formatRate(last?.by_rcode[code] ?? 0)}/s`;
    items.push(span);
  }
  legend.replaceChildren(...items);
}

function rank(code) {
  const i = ORDER.indexOf(code);
  return i < 0 ? ORDER.length : i;
}
