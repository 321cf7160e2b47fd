// EnclosingNames answers "the closest listed name at or above this one" with
// lookups of the name's ancestors. It must give exactly what testing every
// listed name with isAtOrBelow gives (the longest; of equal names the first),
// and cost lookups, not the list: the snapshot model, the config checks and
// the static-record checks ask it once per domain or record.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { EnclosingNames, isAtOrBelow } from '../../src/dns/names.ts';
import { seededRandom } from '../../src/lib/random.ts';

/** The closest by testing every name, as the code before EnclosingNames did. */
function scan(list: readonly string[], name: string, strict: boolean): number {
  let best = -1;
  for (let i = 0; i < list.length; i++) {
    if (strict && name === list[i]) continue;
    if (isAtOrBelow(name, list[i]) && (best < 0 || list[i].length > list[best].length)) best = i;
  }
  return best;
}

test('gives the longest listed name at or above, strictly above with strict, the first of equal names, and -1 outside', () => {
  const list = ['example.test', 'sub.example.test', 'other.test', 'example.test', 'deep.sub.example.test'];
  const names = new EnclosingNames(list);
  assert.equal(names.closest('example.test'), 0, 'the first of two equal names');
  assert.equal(names.closest('www.example.test'), 0);
  assert.equal(names.closest('sub.example.test'), 1);
  assert.equal(names.closest('sub.example.test', true), 0, 'strictly above: the parent zone');
  assert.equal(names.closest('a.b.deep.sub.example.test'), 4);
  assert.equal(names.closest('xsub.example.test'), 0, 'a label, not a string suffix');
  assert.equal(names.closest('test'), -1);
  assert.equal(names.closest('elsewhere.invalid'), -1);
  assert.equal(names.closest(''), -1);
  assert.equal(names.has('other.test'), true);
  assert.equal(names.has('www.other.test'), false);
  // The root encloses only itself, as isAtOrBelow says.
  const withRoot = new EnclosingNames(['', 'test']);
  assert.equal(withRoot.closest(''), 0);
  assert.equal(withRoot.closest('', true), -1);
  assert.equal(withRoot.closest('a.test'), 1);
  assert.equal(withRoot.closest('a.invalid'), -1);
});

test('agrees with testing every listed name, on 2 000 random names against 300 nested ones', () => {
  const next = seededRandom(0x5eed);
  const labels = ['a', 'b', 'c', 'ab', 'x-1', 'zz'];
  const pick = (depth: number): string => Array.from({ length: depth }, () => labels[Math.floor(next() * labels.length)]).join('.');
  const list = Array.from({ length: 300 }, () => pick(1 + Math.floor(next() * 4)));
  const names = new EnclosingNames(list);
  for (let i = 0; i < 2000; i++) {
    const name = pick(1 + Math.floor(next() * 6));
    for (const strict of [false, true]) assert.equal(names.closest(name, strict), scan(list, name, strict), `${name}${strict ? ' (strict)' : ''}`);
  }
});

test('costs lookups, not the list: 100 000 names against 100 000 listed ones in well under a second', () => {
  const list = Array.from({ length: 100_000 }, (_, i) => `z${i}.test`);
  const names = new EnclosingNames(list);
  const started = performance.now();
  let found = 0;
  for (let i = 0; i < 100_000; i++) if (names.closest(`www.app.z${i}.test`) === i) found++;
  const took = performance.now() - started;
  assert.equal(found, 100_000);
  // Testing every listed name would be 10^10 suffix tests (hours); this is milliseconds.
  assert.ok(took < 1000, `took ${Math.round(took)} ms`);
});
