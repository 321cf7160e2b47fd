import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { CONFIG_SCHEMA } from '../../src/config/definition.ts';
import { loadConfig, parseConfigText } from '../../src/config/load.ts';
import type { Schema } from '../../src/config/schema.ts';
import { configEntryFiles, FILE_BLOCK, filesUnder, NOT_A_CONFIG as OPT_OUT, ROOT as root, yamlBlocks } from '../helpers/markdown.ts';

const docFiles = await filesUnder('docs', '.md');
const configFiles = await configEntryFiles();

for (const file of docFiles) {
  const blocks = yamlBlocks(await readFile(join(root, file), 'utf8'));
  for (const block of blocks) {
    const shown = FILE_BLOCK.exec(block.text.split('\n')[0] ?? '');
    if (shown !== null) {
      // The block shows a file of config/ (which the tests below load with its includes); it must show it as it is.
      test(`the yaml example at ${file}:${block.line} is ${shown[1]} verbatim`, async () => {
        const rest = block.text.split('\n').slice(1).join('\n') + '\n';
        assert.equal(rest, await readFile(join(root, shown[1] as string), 'utf8'));
      });
      continue;
    }
    const optOut = OPT_OUT.test(block.text);
    test(`the yaml example at ${file}:${block.line} is a valid config`, { skip: optOut ? 'marked # not-a-config' : false }, () => {
      // Parsed under its own name so a failure points into the Markdown file; an
      // empty environment, so ${VAR:-default} examples validate with their defaults.
      parseConfigText(block.text, `${file}:${block.line}`, { env: {} });
    });
  }
}

for (const file of configFiles) {
  test(`the config ${file} is valid with everything it includes`, async () => {
    await loadConfig(join(root, file), { env: {} });
  });
}

test('docs/configuration.md\'s complete example is config/example.yaml itself, shown verbatim (the test above compares them)', async () => {
  const doc = await readFile(join(root, 'docs/configuration.md'), 'utf8');
  const section = doc.split('\n## A complete example\n')[1]?.split(/^## /m)[0] ?? '';
  const first = yamlBlocks(section)[0];
  assert.ok(first !== undefined, 'the section has a yaml block');
  assert.equal(first.text.split('\n')[0], '# file: config/example.yaml');
});

/**
 * Says where a whole config's state directory ends up, resolved against `file`;
 * it must be set in the config (the default, /var/lib/opengslb, needs root to
 * create) and stay inside the repository, as a relative path does.
 */
function assertDataDirWithoutRoot(text: string, file: string, dataDir: string): void {
  assert.match(text, /\bdata_dir:/, `${file} sets no overwatch.data_dir, so it would need root for /var/lib/opengslb`);
  assert.ok(dataDir.startsWith(root), `${file}: overwatch.data_dir resolves to ${dataDir}, outside the repository (a path that may need root)`);
}

for (const file of docFiles) {
  const blocks = yamlBlocks(await readFile(join(root, file), 'utf8'));
  for (const block of blocks) {
    if (OPT_OUT.test(block.text) || FILE_BLOCK.test(block.text.split('\n')[0] ?? '')) continue;
    test(`the yaml example at ${file}:${block.line} sets a data_dir that works without root`, () => {
      const config = parseConfigText(block.text, join(root, file), { env: {} });
      if (config.mode === 'agent') return;
      assertDataDirWithoutRoot(block.text, `${file}:${block.line}`, config.dataDir);
    });
  }
}

for (const file of configFiles) {
  test(`the config ${file} sets a data_dir that works without root`, async () => {
    const { config } = await loadConfig(join(root, file), { env: {} });
    if (config.mode === 'agent') return;
    assertDataDirWithoutRoot(await readFile(join(root, file), 'utf8'), file, config.dataDir);
  });
}

test('config/ has a multi-file example', () => {
  assert.ok(configFiles.includes('config/example-multifile/main.yaml'), configFiles.join(', '));
});

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
