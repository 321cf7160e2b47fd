// Keeps the hand-written docs in step with the code they describe: the
// counter table in docs/metrics.md with COUNTER, the snapshot layout names in
// docs/architecture.md with src/snapshot/layout.ts, and every relative link in
// README.md and docs/*.md with the files that exist.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { COUNTER, DERIVED_COUNTER_NAMES } from '../../src/metrics/counters-layout.ts';
import * as layout from '../../src/snapshot/layout.ts';

const root = fileURLToPath(new URL('../../', import.meta.url));
const read = (file: string): Promise<string> => readFile(join(root, file), 'utf8');

/** The raw counters readCounters() gives: every COUNTER slot, and those it derives (QUERIES, QTYPE_*, RCODE_*). */
const counterNames = [...Object.keys(COUNTER), ...DERIVED_COUNTER_NAMES];

/** Returns the first cell of every row of every Markdown table, header and separator rows excluded. */
function firstCells(markdown: string): string[] {
  const cells: string[] = [];
  const lines = markdown.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i].trim();
    if (!line.startsWith('|')) continue;
    if (/^\|[\s:|-]+\|$/.test(line)) continue; // separator row
    const next = (lines[i + 1] ?? '').trim();
    if (/^\|[\s:|-]+\|$/.test(next)) continue; // header row: the line above a separator
    cells.push(line.split('|')[1].trim());
  }
  return cells;
}

/** Returns the counter names a first cell documents: each backticked ALL_CAPS name, and every RCODE_n in a `RCODE_a` … `RCODE_b` range. */
function documentedIn(cell: string): string[] {
  const names = [...cell.matchAll(/`([A-Z][A-Z0-9_]*)`/g)].map((m) => m[1]);
  const range = /`RCODE_(\d+)`\s*(?:…|\.\.\.?)\s*`RCODE_(\d+)`/.exec(cell);
  if (range) {
    for (let rc = Number(range[1]); rc <= Number(range[2]); rc++) names.push(`RCODE_${rc}`);
  }
  return [...new Set(names)];
}

const metricsDoc = await read('docs/metrics.md');
const documentedCounters = firstCells(metricsDoc).flatMap(documentedIn);

test('docs/metrics.md has a table row for every counter in COUNTER and every RCODE_n readCounters() sums', () => {
  const missing = counterNames.filter((name) => !documentedCounters.includes(name));
  assert.deepEqual(missing, []);
});

test('every counter named in the first column of the docs/metrics.md tables exists in COUNTER', () => {
  const unknown = documentedCounters.filter((name) => !counterNames.includes(name));
  assert.deepEqual(unknown, []);
});

test('docs/metrics.md documents each counter in one row only', () => {
  const twice = documentedCounters.filter((name, i) => documentedCounters.indexOf(name) !== i);
  assert.deepEqual(twice, []);
});

const LAYOUT_PREFIX = /^(?:HDR|NODE|ZONE|REC|MEM|POLICY)_/;
const layoutNames = Object.keys(layout).filter((name) => LAYOUT_PREFIX.test(name));
const architectureDoc = await read('docs/architecture.md');

test('docs/architecture.md names every HDR_, NODE_, ZONE_, REC_, MEM_ and POLICY_ constant of the snapshot layout', () => {
  assert.ok(layoutNames.length > 40, `only ${layoutNames.length} layout constants found`);
  const missing = layoutNames.filter((name) => !new RegExp(`\\b${name}\\b`).test(architectureDoc));
  assert.deepEqual(missing, []);
});

test('docs/architecture.md names no snapshot layout constant that layout.ts lacks', () => {
  const mentioned = [...architectureDoc.matchAll(/`((?:HDR|NODE|ZONE|REC|MEM|POLICY)_[A-Z0-9_]+)`/g)].map((m) => m[1]);
  const unknown = [...new Set(mentioned)].filter((name) => !layoutNames.includes(name));
  assert.deepEqual(unknown, []);
});

/** Returns the link targets of a Markdown text, ignoring fenced code blocks and inline code. */
function linkTargets(markdown: string): string[] {
  const prose = markdown.replace(/^```[^\n]*\n[\s\S]*?^```\s*$/gm, '').replace(/`[^`\n]*`/g, '');
  return [...prose.matchAll(/\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)/g)].map((m) => m[1]);
}

const markdownFiles = ['README.md', ...(await readdir(join(root, 'docs'))).filter((f) => f.endsWith('.md')).sort().map((f) => `docs/${f}`)];

for (const file of markdownFiles) {
  test(`every relative link in ${file} points at a file that exists`, async () => {
    const broken: string[] = [];
    for (const target of linkTargets(await read(file))) {
      if (/^[a-z][a-z0-9+.-]*:/i.test(target) || target.startsWith('#')) continue; // absolute URL or same-page anchor
      const path = decodeURIComponent(target.split('#')[0]);
      if (!existsSync(join(root, dirname(file), path))) broken.push(target);
    }
    assert.deepEqual(broken, []);
  });
}
