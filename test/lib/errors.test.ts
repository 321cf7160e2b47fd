import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { ERRORS } from '../../src/lib/errors.ts';

const docs = await readFile(new URL('../../docs/errors.md', import.meta.url), 'utf8');
const documented = [...docs.matchAll(/^## (OPENGSLB_ERR_[A-Z0-9_]+)\s*$/gm)].map((m) => m[1]);

test('docs/errors.md has a heading for every code in the registry', () => {
  const missing = Object.keys(ERRORS).filter((code) => !documented.includes(code));
  assert.deepEqual(missing, []);
});

test('docs/errors.md documents no code that the registry lacks', () => {
  const extra = documented.filter((code) => !Object.hasOwn(ERRORS, code));
  assert.deepEqual(extra, []);
});

test('docs/errors.md lists each code once', () => {
  assert.equal(new Set(documented).size, documented.length);
});

test('every registered error has a code equal to its key and a summary', () => {
  for (const [key, spec] of Object.entries(ERRORS)) {
    assert.equal(spec.code, key);
    assert.ok(spec.summary.length > 0, `${key} has an empty summary`);
  }
});

test('docs/errors.md repeats the registry summary under each heading', () => {
  for (const [code, spec] of Object.entries(ERRORS)) {
    const section = docs.split(`## ${code}\n`)[1]?.split(/^## /m)[0] ?? '';
    assert.ok(section.includes(spec.summary), `the section of ${code} does not contain its summary`);
  }
});
