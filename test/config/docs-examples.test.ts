import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { CONFIG_SCHEMA } from '../../src/config/definition.ts';
import { parseConfigText } from '../../src/config/load.ts';
import type { Schema } from '../../src/config/schema.ts';

const root = new URL('../../', import.meta.url).pathname;
const OPT_OUT = /^# not-a-config\b/;

async function filesIn(dir: string, suffix: string): Promise<string[]> {
  try {
    return (await readdir(join(root, dir))).filter((f) => f.endsWith(suffix)).sort().map((f) => join(dir, f));
  } catch {
    return [];
  }
}

/** Returns every ```yaml block of a Markdown text with the line its content starts on. */
function yamlBlocks(markdown: string): { line: number; text: string }[] {
  const blocks: { line: number; text: string }[] = [];
  const lines = markdown.split('\n');
  for (let i = 0; i < lines.length; i++) {
    if (!/^```ya?ml\s*$/.test(lines[i] ?? '')) continue;
    const start = i + 1;
    let end = start;
    while (end < lines.length && !/^```\s*$/.test(lines[end] ?? '')) end++;
    blocks.push({ line: start + 1, text: lines.slice(start, end).join('\n') });
    i = end;
  }
  return blocks;
}

const docFiles = await filesIn('docs', '.md');
const configFiles = await filesIn('config', '.yaml');

for (const file of docFiles) {
  const blocks = yamlBlocks(await readFile(join(root, file), 'utf8'));
  for (const block of blocks) {
    const optOut = OPT_OUT.test(block.text);
    test(`the yaml example at ${file}:${block.line} is a valid config`, { skip: optOut ? 'marked # not-a-config' : false }, () => {
      // Parsed under its own name so a failure points into the Markdown file.
      parseConfigText(block.text, `${file}:${block.line}`);
    });
  }
}

for (const file of configFiles) {
  test(`the config file ${file} is valid`, async () => {
    parseConfigText(await readFile(join(root, file), 'utf8'), file);
  });
}

test('docs/configuration.md has at least one complete yaml example', async () => {
  const blocks = yamlBlocks(await readFile(join(root, 'docs/configuration.md'), 'utf8'));
  assert.ok(blocks.some((b) => !OPT_OUT.test(b.text)));
});

/** Lists the key paths of a schema's leaves and lists (a map is documented through its keys): `dns.listen_address`, `regions[].servers[].port`, … */
function keyPaths(schema: Schema, path: string): string[] {
  switch (schema.kind) {
    case 'object':
      return Object.entries(schema.keys).flatMap(([key, child]) => {
        const childPath = path === '' ? key : `${path}.${key}`;
        return child.kind === 'object' ? keyPaths(child, childPath) : [childPath, ...keyPaths(child, childPath)];
      });
    case 'list':
      return keyPaths(schema.items, `${path}[]`);
    case 'oneOf':
      return schema.variants.flatMap((v) => keyPaths(v, path));
    default:
      return [];
  }
}

test('docs/configuration.md documents every key of the definition', async () => {
  const docs = await readFile(join(root, 'docs/configuration.md'), 'utf8');
  const mentioned = (path: string): boolean => {
    if (docs.includes(`\`${path}\``)) return true;
    // A row for `parent.*` covers every key below parent.
    const parts = path.split('.');
    for (let n = parts.length - 1; n > 0; n--) if (docs.includes(`\`${parts.slice(0, n).join('.')}.*\``)) return true;
    return false;
  };
  const missing = keyPaths(CONFIG_SCHEMA, '').filter((p) => !mentioned(p));
  assert.deepEqual(missing, []);
});
