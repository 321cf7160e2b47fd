// What a refusal of an unknown region name says is expected: the configured
// spelling when only case differs, else a short list.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { expectedRegion } from '../../src/lib/region-names.ts';

const cases: { name: string; input: [string, string[]]; expect: string }[] = [
  { name: 'names the configured spelling of a name that differs only in case', input: ['EU-West', ['us-east', 'eu-west']], expect: 'region names are case-sensitive, expected "eu-west"' },
  { name: 'lists the regions for a name that matches none', input: ['mars', ['us-east', 'eu-west']], expect: 'expected one of: us-east, eu-west' },
  { name: 'lists the first ten and says how many there are', input: ['mars', Array.from({ length: 12 }, (_, i) => `r${i}`)], expect: 'expected one of: r0, r1, r2, r3, r4, r5, r6, r7, r8, r9, … (12 in all)' },
  { name: 'says (none) when there is no region', input: ['mars', []], expect: 'expected one of: (none)' },
];

for (const c of cases) {
  test(`expectedRegion ${c.name}`, () => {
    assert.equal(expectedRegion(...c.input), c.expect);
  });
}
