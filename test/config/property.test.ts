// Property tests (fast-check) of the config loader: any mutation of a valid
// file, of its characters or of its values, gives either a valid config or a
// ConfigError whose every problem has a file, a line and a column inside the
// text, a key path and a message; never any other exception.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import fc from 'fast-check';
import { isMap, isScalar, isSeq, parseDocument, type Node as YamlNode } from 'yaml';
import { ConfigError, parseConfigText } from '../../src/config/load.ts';
import { ROOT } from '../helpers/markdown.ts';

const RUNS = 500;
const FILE = 'prop.yaml';
// The example config npm start serves: every section of an overwatch, with comments and flow and block styles.
const VALID = readFileSync(join(ROOT, 'config/example.yaml'), 'utf8');

/** Loads `text` and checks the outcome: a config, or problems each with file:line:col inside the text. */
function loadsCleanly(text: string): 'valid' | 'problems' {
  try {
    parseConfigText(text, FILE, { env: { OPENGSLB_API_TOKEN: 'x'.repeat(20) } });
    return 'valid';
  } catch (err) {
    if (!(err instanceof ConfigError)) throw new Error(`not a ConfigError: ${(err as Error)?.stack ?? String(err)}\n--- text ---\n${text}`);
    assert.ok(err.problems.length > 0, 'a ConfigError lists at least one problem');
    const lines = text.split('\n').length;
    for (const p of err.problems) {
      const where = `${p.file}:${p.line}:${p.col}: ${p.path}: ${p.message}`;
      assert.equal(p.file, FILE, where);
      assert.ok(Number.isInteger(p.line) && p.line >= 1 && p.line <= lines + 1, `line out of the text: ${where}`);
      assert.ok(Number.isInteger(p.col) && p.col >= 1, `column: ${where}`);
      assert.ok(typeof p.message === 'string' && p.message.length > 0, `message: ${where}`);
      assert.ok(typeof p.path === 'string' && p.path.length > 0, `path: ${where}`);
    }
    return 'problems';
  }
}

test('the example config is valid, so mutations start from a valid file', () => {
  assert.equal(loadsCleanly(VALID), 'valid');
});

test('any character-level mutation of a valid file gives a config or problems with file:line:col, never an exception', () => {
  const YAML_CHARS = [':', '-', ' ', '\n', '\t', '{', '}', '[', ']', ',', '"', "'", '#', '&', '*', '!', '|', '>', '%', '@', '`', '?', '0', 'x', '\u00e9', '\u0000', '\ufeff', '${', '${NOPE}', '<<'];
  const edit = fc.oneof(
    fc.record({ kind: fc.constant('delete' as const), at: fc.nat(), len: fc.integer({ min: 1, max: 40 }) }),
    fc.record({ kind: fc.constant('insert' as const), at: fc.nat(), text: fc.oneof(fc.constantFrom(...YAML_CHARS), fc.string({ maxLength: 12 })) }),
    fc.record({ kind: fc.constant('duplicate-line' as const), at: fc.nat() }),
    fc.record({ kind: fc.constant('swap-lines' as const), at: fc.nat(), other: fc.nat() }),
    fc.record({ kind: fc.constant('indent' as const), at: fc.nat(), by: fc.integer({ min: -4, max: 4 }) }),
  );
  fc.assert(
    fc.property(fc.array(edit, { minLength: 1, maxLength: 4 }), (edits) => {
      let text = VALID;
      for (const e of edits) {
        const lines = text.split('\n');
        const at = e.at % (text.length + 1);
        if (e.kind === 'delete') text = text.slice(0, at) + text.slice(at + e.len);
        else if (e.kind === 'insert') text = text.slice(0, at) + e.text + text.slice(at);
        else if (e.kind === 'duplicate-line') lines.splice(e.at % lines.length, 0, lines[e.at % lines.length]), (text = lines.join('\n'));
        else if (e.kind === 'swap-lines') {
          const a = e.at % lines.length;
          const b = e.other % lines.length;
          [lines[a], lines[b]] = [lines[b], lines[a]];
          text = lines.join('\n');
        } else {
          const i = e.at % lines.length;
          lines[i] = e.by >= 0 ? ' '.repeat(e.by) + lines[i] : lines[i].slice(Math.min(-e.by, lines[i].length - lines[i].trimStart().length));
          text = lines.join('\n');
        }
      }
      loadsCleanly(text);
    }),
    { numRuns: RUNS },
  );
});

/** Every node of the document with its path, for value-level mutations. */
function nodesOf(node: unknown, path: (string | number)[] = [], out: (string | number)[][] = []): (string | number)[][] {
  if (isMap(node)) {
    for (const pair of node.items) {
      const key = isScalar(pair.key) ? String(pair.key.value) : String(pair.key);
      out.push([...path, key]);
      nodesOf(pair.value, [...path, key], out);
    }
  } else if (isSeq(node)) {
    node.items.forEach((item, i) => {
      out.push([...path, i]);
      nodesOf(item, [...path, i], out);
    });
  }
  return out;
}

test('any value-level mutation (a value replaced by any JSON value, a key removed or added) gives a config or problems with file:line:col', () => {
  const base = parseDocument(VALID);
  const paths = nodesOf(base.contents as YamlNode);
  assert.ok(paths.length > 50, `${paths.length} paths`);
  const jsonValue = fc.oneof(
    fc.constantFrom(null, true, false, 0, -1, 65536, 1e300, '', ' ', 'x', '0.0.0.0:53', '10s', '-5s', '127.0.0.1/33', '::', 'eu-west', 'app.example.test', '${UNSET}'),
    fc.jsonValue({ maxDepth: 3 }),
  );
  const mutation = fc.oneof(
    fc.record({ kind: fc.constant('set' as const), at: fc.nat(), value: jsonValue }),
    fc.record({ kind: fc.constant('delete' as const), at: fc.nat() }),
    fc.record({ kind: fc.constant('add' as const), at: fc.nat(), key: fc.oneof(fc.constantFrom('enabled', 'address', 'name', 'servers', 'regions', 'token', 'tls', 'cert_file', 'colour'), fc.string({ maxLength: 8 })), value: jsonValue }),
  );
  fc.assert(
    fc.property(fc.array(mutation, { minLength: 1, maxLength: 3 }), (mutations) => {
      const doc = base.clone();
      for (const m of mutations) {
        const path = paths[m.at % paths.length];
        try {
          if (m.kind === 'set') doc.setIn(path, doc.createNode(m.value));
          else if (m.kind === 'delete') doc.deleteIn(path);
          else if (isMap(doc.getIn(path.slice(0, -1), true))) doc.setIn([...path.slice(0, -1), m.key], doc.createNode(m.value));
        } catch {
          // The path no longer exists after an earlier mutation: skip this one.
        }
      }
      loadsCleanly(doc.toString());
    }),
    { numRuns: RUNS },
  );
});
