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
import { CONFIG_SCHEMA } from '../../src/config/definition.ts';
import type { Schema } from '../../src/config/schema.ts';

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

// ---- "Not available yet" only for what is not available

/** Words that say a feature is missing from this version. */
const NOT_YET = /not (?:available|used|running|supported|wired)(?: in this version| by this version)? yet|cannot run it yet|does not exist yet|not used by this version yet/i;
/** Features this version runs: a page that says one of them is missing is out of date. */
const WORKING = /\b(?:latency|metrics|admin API|`api`|data_dir|overwatch\.geolocation|overwatch\.dnssec|geolocation keys|operator overrides?|reload)\b/i;

test('no page calls a feature this version runs "not available yet" (latency, metrics, api, data_dir, geolocation and dnssec keys, operator overrides, reload)', async () => {
  const pages = [...(await readdir(join(root, 'docs'))).filter((f) => f.endsWith('.md')).map((f) => `docs/${f}`), 'README.md'];
  const stale: string[] = [];
  for (const page of pages) {
    const lines = (await read(page)).split('\n');
    for (let i = 0; i < lines.length; i++) {
      if (!NOT_YET.test(lines[i])) continue;
      // "expected one of round-robin, …, latency" lists what works; only the claim before it counts.
      const claim = lines[i].replace(/expected one of .*/, '');
      if (WORKING.test(claim)) stale.push(`${page}:${i + 1}: ${lines[i].trim()}`);
    }
  }
  assert.deepEqual(stale, []);
});

/** The schema node at a documented key path ("agent.backends[].port"), or undefined; with whether it or an ancestor is marked notUsedYet. */
function schemaAt(path: string): { found: boolean; notUsedYet: boolean } {
  let node: Schema | undefined = CONFIG_SCHEMA;
  let notUsedYet = false;
  for (const part of path.replace(/\.\*$/, '').split('.')) {
    const [name, ...lists] = part.split('[]');
    if (node?.kind !== 'object') return { found: false, notUsedYet };
    node = node.keys[name];
    notUsedYet ||= node?.notUsedYet === true;
    for (let l = 0; l < lists.length; l++) {
      if (node?.kind !== 'list') return { found: false, notUsedYet };
      node = node.items;
      notUsedYet ||= node.notUsedYet === true;
    }
    if (node?.kind === 'map') {
      notUsedYet ||= node.notUsedYet === true;
    }
  }
  return { found: node !== undefined, notUsedYet };
}

test('every key docs/configuration.md lists as "kept for compatibility" is one the definition marks as not used yet', async () => {
  const doc = await read('docs/configuration.md');
  const section = doc.split('\n## Sections kept for compatibility\n')[1]?.split(/^## /m)[0] ?? '';
  const keys = [...section.matchAll(/^\| `([a-z_.[\]*]+)` \|/gm)].map((m) => m[1]);
  assert.ok(keys.length > 5, `only ${keys.length} keys found`);
  const wrong = keys.filter((k) => {
    const at = schemaAt(k);
    return !at.found || !at.notUsedYet;
  });
  assert.deepEqual(wrong, []);
});
