// Bench only, cold. The shapes of the results files and their renderings:
// markdown tables for micro and e2e, the goals check, and a hand-written SVG
// with two panels (QPS per scenario against the bare-responder ceiling, and
// latency percentiles at the fixed offered load). No chart library: the SVG is
// plain rectangles, lines and text, so it renders the same everywhere.

import { PLOT_QUANTILES } from './histogram.ts';

/* ─────────────────────────────── micro ─────────────────────────────── */

export interface MicroCaseResult {
  readonly group: string;
  readonly name: string;
  readonly opsPerSec: number;
  readonly meanNs: number;
  readonly medianNs: number;
  readonly rmePct: number;
  readonly samples: number;
  /** Calls per tinybench sample. */
  readonly batch: number;
  /** Bytes allocated per call; null when not measured. */
  readonly bytesPerOp: number | null;
}

export interface MicroResult {
  readonly schema: 1;
  readonly kind: 'micro';
  readonly startedAt: string;
  readonly finishedAt: string;
  readonly machine: Record<string, unknown>;
  readonly load: { loadAvg1: number; loadAvg5: number; busiest: string[] };
  readonly options: Record<string, unknown>;
  readonly allocMethod: string;
  readonly calibration: { emptyFunction: number | null; twoFieldObject: number | null };
  readonly cases: readonly MicroCaseResult[];
  readonly sink: number;
}

const int = (n: number): string => Math.round(n).toLocaleString('en-US');
const ms3 = (n: number | null | undefined): string => (n === null || n === undefined ? '–' : n.toFixed(3));
const pct0 = (n: number | null | undefined): string => (n === null || n === undefined ? '–' : `${n.toFixed(0)} %`);
const ratio2 = (n: number | null | undefined): string => (n === null || n === undefined ? '–' : n.toFixed(2));

/** Renders the micro results as one markdown table. */
export function renderMicroMarkdown(r: MicroResult): string {
  const out: string[] = [];
  out.push(`### Micro benchmarks (tinybench ${String(r.machine.tinybench ?? '?')}, ${String(r.machine.node)})`, '');
  out.push('| stage | operation | ops/s | mean ns/op | median ns/op | ± % | bytes/op |');
  out.push('| --- | --- | ---: | ---: | ---: | ---: | ---: |');
  for (const c of r.cases) {
    out.push(`| ${c.group} | ${c.name} | ${int(c.opsPerSec)} | ${c.meanNs.toFixed(1)} | ${c.medianNs.toFixed(1)} | ${c.rmePct.toFixed(1)} | ${c.bytesPerOp === null ? '–' : c.bytesPerOp.toFixed(1)} |`);
  }
  out.push('');
  out.push(
    `Allocation: ${r.allocMethod}. Calibration: empty function ${r.calibration.emptyFunction ?? '–'} B/call, ` +
      `2-field object ${r.calibration.twoFieldObject ?? '–'} B/call. Load average during the run: ${r.load.loadAvg1}.`,
    '',
  );
  return out.join('\n');
}

/* ──────────────────────────────── e2e ──────────────────────────────── */

/** One measured run of one scenario. */
export interface RunFigures {
  readonly scenario: string;
  readonly rep: number;
  readonly mode: 'saturation' | 'fixed';
  readonly generator: 'dnsperf' | 'own';
  readonly offeredQps: number | null;
  readonly qps: number;
  readonly sent: number;
  readonly completed: number;
  readonly lost: number;
  readonly runTimeSec: number;
  readonly rcodes: Record<string, number>;
  readonly avgMs: number | null;
  readonly p50Ms: number | null;
  readonly p90Ms: number | null;
  readonly p99Ms: number | null;
  readonly p999Ms: number | null;
  readonly targetCpuPct: number | null;
  /** The target's CPU per thread name (% of one core), e.g. {"dns-0": 92.5, "V8Worker": 1.2}. */
  readonly threadCpuPct: Record<string, number> | null;
  readonly generatorCpuPct: number | null;
  readonly rssBytes: number | null;
  readonly peakRssBytes: number | null;
  /** Sparse latency histogram ([bucket, count], bench/lib/histogram.ts), fixed-load runs only. */
  readonly histogram: Array<[number, number]> | null;
  /** Generator-specific extras (TCP reconnects, queries backlogged…). */
  readonly extra: Record<string, number>;
}

/** Median and spread of one figure over the repetitions. */
export interface Spread {
  readonly median: number;
  readonly min: number;
  readonly max: number;
  readonly n: number;
}

export interface FixedSummary {
  readonly offeredQps: number;
  readonly achievedQps: Spread;
  readonly p50Ms: Spread;
  readonly p99Ms: Spread;
  readonly p999Ms: Spread;
  readonly cpuPct: number | null;
  readonly lost: number;
  /** Percentile curve of all fixed-load runs merged: [quantile, ms]. */
  readonly curve: Array<[number, number]>;
}

export interface ScenarioSummary {
  readonly id: string;
  readonly meaning: string;
  readonly target: string;
  readonly transport: string;
  readonly ceiling: string | null;
  readonly qps: Spread | null;
  readonly cpuPctAtSaturation: number | null;
  /** Median per-thread CPU at saturation (% of one core). */
  readonly threadCpuPctAtSaturation: Record<string, number> | null;
  /**
   * Server CPU time per answered query at saturation, µs (median of runs):
   * CPU% / 100 / QPS. Unlike QPS it barely moves when another process takes
   * the core, because the server's CPU time shrinks with its answers.
   */
  readonly cpuUsPerQuery: Spread | null;
  readonly lostAtSaturation: number;
  readonly fixed: FixedSummary | null;
  /** Largest end-of-run RSS and the process's peak RSS (VmHWM), MB. */
  readonly rssMb: number | null;
  readonly peakRssMb: number | null;
  /** median QPS / ceiling's median QPS. */
  readonly qpsVsCeiling: number | null;
  /** The same ratio per repetition (runs next to each other), median and spread. */
  readonly pairedQpsVsCeiling: Spread | null;
  /** The ceiling's median µs per query / this one's: the QPS ratio with the CPU starvation taken out. */
  readonly cpuEfficiencyVsCeiling: number | null;
  /** median p99 / ceiling's median p99 at the fixed load. */
  readonly p99VsCeiling: number | null;
}

export interface Goal {
  readonly name: string;
  /** The figure the goal is judged on (QPS and latency, as the goal is stated). */
  readonly value: number | null;
  /** The same figure from server CPU per query, where one exists: it tells noise from regression. */
  readonly cpuValue: number | null;
  readonly target: string;
  readonly met: boolean | null;
  /** A paired goal's per-repetition figures (cpuValue is their median): how many, the lowest and the highest. */
  readonly pairs?: Spread | null;
}

export interface E2eResult {
  readonly schema: 1;
  readonly kind: 'e2e';
  readonly startedAt: string;
  readonly finishedAt: string;
  readonly machine: Record<string, unknown>;
  readonly load: { before: unknown; after: unknown };
  readonly generator: { readonly name: 'dnsperf' | 'own'; readonly version: string | null; readonly note: string };
  readonly options: Record<string, unknown>;
  readonly commands: Record<string, string>;
  readonly configs: Record<string, string>;
  readonly summaries: readonly ScenarioSummary[];
  /** Engine QPS / bare QPS, round-robin over 3 servers (medians). */
  readonly headline: number | null;
  /** The same from server CPU per query (bare µs/query ÷ engine µs/query). */
  readonly headlineCpu: number | null;
  readonly goals: readonly Goal[];
  /** Paired ratios judged against no target (the kernel's floor against Knot and the engine); absent in results written before they were split from the goals. */
  readonly figures?: readonly Goal[];
  readonly runs: readonly RunFigures[];
  readonly outputTails: Record<string, { stdout: string; stderr: string }>;
}

const spreadText = (s: Spread | null | undefined, fmt: (n: number) => string): string =>
  s === null || s === undefined ? '–' : s.n > 1 ? `${fmt(s.median)} (${fmt(s.min)}–${fmt(s.max)})` : fmt(s.median);
const kq = (n: number): string => `${(n / 1000).toFixed(1)}k`;

/** Renders the e2e results: goals, the scenario table and the latency table. */
export function renderE2eMarkdown(r: E2eResult): string {
  const o = r.options as { runs: number; headlineRuns: number; pairedRuns?: number; durationSec: number; fixedDurationSec: number; rate: number; workers: number };
  const out: string[] = [];
  const ceiling = r.summaries.find((s) => s.id === 'a-rr-3')?.ceiling ?? 'bare';
  const pairedRuns = o.pairedRuns ?? o.runs;
  const pair = [
    ...(o.headlineRuns > Math.max(o.runs, pairedRuns) ? [`${ceiling} and a-rr-3 ${o.headlineRuns} × at saturation`] : []),
    ...(pairedRuns > o.runs ? [`the scenarios of the paired goals ${pairedRuns} × at saturation`] : []),
  ]
    .map((x) => `; ${x}`)
    .join('');
  out.push(`### End to end: ${o.runs} × (${o.durationSec} s saturation + ${o.fixedDurationSec} s at ${int(o.rate)} q/s) per scenario${pair}, ${o.workers} DNS worker(s)`, '');
  out.push(`Load generator: **${r.generator.name}**${r.generator.version === null ? '' : ` ${r.generator.version}`}. ${r.generator.note}`, '');
  out.push(`**Headline, engine / ${ceiling} QPS (round-robin, 3 servers): ${ratio2(r.headline)}** (from server CPU per query: ${ratio2(r.headlineCpu)})`, '');
  out.push('| goal | value | from CPU per query | target | met |', '| --- | ---: | ---: | --- | --- |');
  const f3 = (n: number | null): string => (n === null ? '–' : n.toFixed(3));
  const cpuText = (g: Goal): string => (g.pairs != null && g.pairs.n > 1 ? `${f3(g.cpuValue)} (${g.pairs.n} pairs: ${f3(g.pairs.min)}…${f3(g.pairs.max)})` : f3(g.cpuValue));
  for (const g of r.goals) out.push(`| ${g.name} | ${f3(g.value)} | ${cpuText(g)} | ${g.target} | ${g.met === null ? '–' : g.met ? 'yes' : '**no**'} |`);
  out.push('');
  if (r.figures !== undefined && r.figures.length > 0) {
    out.push('Figures beside the goals, with no target: where the kernel\'s floor for the batched design (bench/floor-responder.c) sits:', '');
    out.push('| figure | from CPU per query |', '| --- | ---: |');
    for (const g of r.figures) out.push(`| ${g.name} | ${cpuText(g)} |`);
    out.push('');
  }
  out.push(
    'Saturation (median of runs, min–max in brackets). vs ceiling = median QPS / the ceiling\'s median QPS; paired = the same per repetition (adjacent runs), median and spread; ' +
      'CPU µs/query = server CPU time per answer, and vs ceiling (CPU) = the ceiling\'s µs/query / this one\'s, which holds when another process steals the core:',
    '',
  );
  out.push('| scenario | QPS | vs ceiling | paired | CPU µs/query | vs ceiling (CPU) | server CPU | threads | RSS MB | lost |', '| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: |');
  for (const s of r.summaries) {
    const threads = s.threadCpuPctAtSaturation === null ? '–' : Object.entries(s.threadCpuPctAtSaturation).map(([k, v]) => `${k} ${v.toFixed(0)}`).join(', ');
    out.push(
      `| ${s.id} | ${spreadText(s.qps, int)} | ${s.ceiling === null ? '(ceiling)' : ratio2(s.qpsVsCeiling)} | ${s.pairedQpsVsCeiling === null ? '–' : spreadText(s.pairedQpsVsCeiling, (n) => n.toFixed(2))} | ` +
        `${spreadText(s.cpuUsPerQuery, (n) => n.toFixed(2))} | ${s.ceiling === null ? '(ceiling)' : ratio2(s.cpuEfficiencyVsCeiling)} | ${pct0(s.cpuPctAtSaturation)} | ${threads} | ${s.rssMb === null ? '–' : s.rssMb.toFixed(0)} | ${int(s.lostAtSaturation)} |`,
    );
  }
  out.push('');
  out.push(`At ${int(o.rate)} q/s offered (per-query latency, ms; median of runs, min–max in brackets; p99 ratio = median p99 / the ceiling's):`, '');
  out.push('| scenario | achieved QPS | p50 | p99 | p99.9 | p99 vs ceiling | server CPU | lost |', '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |');
  for (const s of r.summaries) {
    const f = s.fixed;
    if (f === null) continue;
    out.push(
      `| ${s.id} | ${spreadText(f.achievedQps, int)} | ${spreadText(f.p50Ms, (n) => n.toFixed(3))} | ${spreadText(f.p99Ms, (n) => n.toFixed(3))} | ${spreadText(f.p999Ms, (n) => n.toFixed(3))} | ${s.ceiling === null ? '(ceiling)' : ratio2(s.p99VsCeiling)} | ${pct0(f.cpuPct)} | ${int(f.lost)} |`,
    );
  }
  out.push('');
  out.push('| scenario | what it measures |', '| --- | --- |');
  for (const s of r.summaries) out.push(`| ${s.id} | ${s.meaning} |`);
  out.push('');
  return out.join('\n');
}

/* ──────────────────────────────── SVG ──────────────────────────────── */

const esc = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
const PALETTE = ['#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#8c564b', '#e377c2', '#7f7f7f', '#bcbd22', '#17becf', '#393b79', '#637939'];
const FONT = 'font-family="DejaVu Sans, Helvetica, Arial, sans-serif"';

/** Returns "nice" tick values from 0 to at least max. */
function niceTicks(max: number, count: number): number[] {
  const raw = max / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? 10 * mag;
  const ticks: number[] = [];
  for (let v = 0; v <= max + step * 0.001; v += step) ticks.push(v);
  if (ticks[ticks.length - 1] < max) ticks.push(ticks[ticks.length - 1] + step);
  return ticks;
}

/**
 * Renders the chart: panel 1, median QPS per scenario as bars with min–max
 * whiskers and each ceiling as a dashed line; panel 2, latency against
 * percentile at the fixed load, log–log.
 */
export function renderSvg(r: E2eResult): string {
  const W = 980;
  const left = 150;
  const right = 830;
  const rowH = 24;
  const rows = r.summaries.filter((s) => s.qps !== null);
  const p1Top = 56;
  const p1Bottom = p1Top + rows.length * rowH;
  const p2Top = p1Bottom + 90;
  const p2H = 330;
  const H = p2Top + p2H + 70;
  const o = r.options as { rate: number; runs: number; workers: number };
  const parts: string[] = [];
  parts.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" ${FONT} font-size="12">`);
  parts.push(`<rect width="${W}" height="${H}" fill="#ffffff"/>`);
  const date = r.startedAt.slice(0, 10);
  parts.push(`<text x="20" y="24" font-size="16" font-weight="bold">OpenGSLB: QPS at saturation per scenario against the bare responder (${esc(date)})</text>`);
  parts.push(
    `<text x="20" y="42" fill="#555">${esc(`${String(r.machine.cpuModel)} × ${String(r.machine.nproc)}, ${String(r.machine.node)}, ${o.workers} DNS worker(s), load generator ${r.generator.name}, median of ${o.runs} run(s), whiskers min–max`)}</text>`,
  );

  // Panel 1: bars.
  const maxQps = Math.max(1, ...rows.map((s) => (s.qps as Spread).max));
  const ticks = niceTicks(maxQps, 6);
  const xMax = ticks[ticks.length - 1];
  const x = (v: number): number => left + ((right - left) * v) / xMax;
  for (const t of ticks) {
    parts.push(`<line x1="${x(t).toFixed(1)}" y1="${p1Top - 4}" x2="${x(t).toFixed(1)}" y2="${p1Bottom}" stroke="#e5e5e5"/>`);
    parts.push(`<text x="${x(t).toFixed(1)}" y="${p1Bottom + 16}" text-anchor="middle" fill="#555">${esc(t >= 1000 ? `${t / 1000}k` : String(t))}</text>`);
  }
  parts.push(`<text x="${(left + right) / 2}" y="${p1Bottom + 34}" text-anchor="middle" fill="#333">queries per second (higher is better)</text>`);
  rows.forEach((s, i) => {
    const q = s.qps as Spread;
    const y = p1Top + i * rowH;
    const isCeiling = s.ceiling === null;
    const colour = isCeiling ? '#9e9e9e' : s.id === 'a-rr-3' ? '#1f5fa8' : '#5b9bd5';
    parts.push(`<text x="${left - 8}" y="${y + 15}" text-anchor="end"${s.id === 'a-rr-3' ? ' font-weight="bold"' : ''}>${esc(s.id)}</text>`);
    parts.push(`<rect x="${left}" y="${y + 4}" width="${(x(q.median) - left).toFixed(1)}" height="${rowH - 8}" fill="${colour}"/>`);
    if (q.n > 1) {
      const yc = y + rowH / 2;
      parts.push(`<line x1="${x(q.min).toFixed(1)}" y1="${yc}" x2="${x(q.max).toFixed(1)}" y2="${yc}" stroke="#222" stroke-width="1.2"/>`);
      parts.push(`<line x1="${x(q.min).toFixed(1)}" y1="${yc - 5}" x2="${x(q.min).toFixed(1)}" y2="${yc + 5}" stroke="#222"/>`);
      parts.push(`<line x1="${x(q.max).toFixed(1)}" y1="${yc - 5}" x2="${x(q.max).toFixed(1)}" y2="${yc + 5}" stroke="#222"/>`);
    }
    const label = isCeiling ? `${kq(q.median)} (ceiling)` : `${kq(q.median)} · ${ratio2(s.qpsVsCeiling)}×`;
    parts.push(`<text x="${right + 8}" y="${y + 15}" fill="#333">${esc(label)}</text>`);
  });
  // Each ceiling as a dashed line over the rows it bounds.
  for (const ceiling of rows.filter((s) => s.ceiling === null)) {
    const bounded = rows.map((s, i) => ({ s, i })).filter(({ s }) => s.ceiling === ceiling.id || s.id === ceiling.id);
    if (bounded.length === 0) continue;
    const y0 = p1Top + Math.min(...bounded.map((b) => b.i)) * rowH;
    const y1 = p1Top + (Math.max(...bounded.map((b) => b.i)) + 1) * rowH;
    const cx = x((ceiling.qps as Spread).median).toFixed(1);
    parts.push(`<line x1="${cx}" y1="${y0}" x2="${cx}" y2="${y1}" stroke="#c0392b" stroke-width="1.5" stroke-dasharray="5,4"/>`);
  }

  // Panel 2: latency percentiles.
  const curves = r.summaries.filter((s) => s.fixed !== null && s.fixed.curve.length > 0);
  parts.push(`<text x="20" y="${p2Top - 30}" font-size="16" font-weight="bold">${esc(`Latency at ${int(o.rate)} q/s offered (curves: all runs merged; legend: p99 of the median run; lower is better)`)}</text>`);
  const pl = 90;
  const pr = 760;
  const pt = p2Top;
  const pb = p2Top + p2H;
  const qx = (q: number): number => -Math.log10(1 - q);
  const qMin = qx(PLOT_QUANTILES[0]);
  const qMax = qx(PLOT_QUANTILES[PLOT_QUANTILES.length - 1]);
  const px = (q: number): number => pl + ((pr - pl) * (qx(q) - qMin)) / (qMax - qMin);
  const allMs = curves.flatMap((s) => (s.fixed as FixedSummary).curve.map(([, v]) => v)).filter((v) => v > 0);
  const lo = Math.floor(Math.log10(Math.max(1e-3, Math.min(...allMs, 1))));
  const hi = Math.ceil(Math.log10(Math.max(...allMs, 0.01)));
  const py = (ms: number): number => pb - ((pb - pt) * (Math.log10(Math.max(ms, 10 ** lo)) - lo)) / Math.max(1, hi - lo);
  for (let d = lo; d <= hi; d++) {
    const yy = py(10 ** d).toFixed(1);
    parts.push(`<line x1="${pl}" y1="${yy}" x2="${pr}" y2="${yy}" stroke="#e5e5e5"/>`);
    parts.push(`<text x="${pl - 8}" y="${Number(yy) + 4}" text-anchor="end" fill="#555">${esc(d >= 0 ? String(10 ** d) : (10 ** d).toFixed(-d))}</text>`);
  }
  for (const q of PLOT_QUANTILES) {
    const xx = px(q).toFixed(1);
    parts.push(`<line x1="${xx}" y1="${pt}" x2="${xx}" y2="${pb}" stroke="#f0f0f0"/>`);
    parts.push(`<text x="${xx}" y="${pb + 16}" text-anchor="middle" fill="#555">${esc(`p${+(q * 100).toFixed(2)}`)}</text>`);
  }
  parts.push(`<rect x="${pl}" y="${pt}" width="${pr - pl}" height="${pb - pt}" fill="none" stroke="#999"/>`);
  parts.push(`<text x="${(pl + pr) / 2}" y="${pb + 36}" text-anchor="middle" fill="#333">percentile</text>`);
  parts.push(`<text x="24" y="${(pt + pb) / 2}" text-anchor="middle" fill="#333" transform="rotate(-90 24 ${(pt + pb) / 2})">latency, ms (log)</text>`);
  let colourIndex = 0;
  curves.forEach((s, i) => {
    const f = s.fixed as FixedSummary;
    const isBare = s.ceiling === null;
    // Ceilings dashed (UDP black, TCP grey), the headline bold blue, the rest from the palette.
    const colour = isBare ? (s.transport === 'tcp' ? '#8a8a8a' : '#000000') : s.id === 'a-rr-3' ? '#1f5fa8' : PALETTE[(colourIndex++ + 1) % PALETTE.length];
    const width = isBare || s.id === 'a-rr-3' ? 2.6 : 1.3;
    const dash = isBare ? ' stroke-dasharray="6,3"' : '';
    const pts = f.curve.map(([q, v]) => `${px(q).toFixed(1)},${py(v).toFixed(1)}`).join(' ');
    parts.push(`<polyline points="${pts}" fill="none" stroke="${colour}" stroke-width="${width}"${dash}/>`);
    for (const [q, v] of f.curve) parts.push(`<circle cx="${px(q).toFixed(1)}" cy="${py(v).toFixed(1)}" r="${width > 2 ? 2.6 : 1.8}" fill="${colour}"/>`);
    const ly = pt + 8 + i * 20;
    parts.push(`<line x1="${pr + 16}" y1="${ly}" x2="${pr + 40}" y2="${ly}" stroke="${colour}" stroke-width="${width}"${dash}/>`);
    parts.push(`<text x="${pr + 46}" y="${ly + 4}">${esc(`${s.id} p99 ${ms3(f.p99Ms.median)}`)}</text>`);
  });
  parts.push('</svg>');
  return parts.join('\n') + '\n';
}
