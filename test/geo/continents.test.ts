import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  CONTINENT_CODES, CONTINENT_OF_COUNTRY, COUNTRY_SLOTS, continentCodeOf, continentIndex, countryCodeOf, countryIndex,
  countryIndexOfChars, isKnownCountry,
} from '../../src/geo/continents.ts';

test('the table knows the 249 ISO 3166-1 alpha-2 codes and XK, and nothing else', () => {
  let known = 0;
  for (let i = 0; i < COUNTRY_SLOTS; i++) if (CONTINENT_OF_COUNTRY[i] >= 0) known++;
  assert.equal(known, 250);
  for (const code of ['UK', 'EU', 'AP', 'ZZ', 'XX', 'QQ']) assert.equal(isKnownCountry(code), false, code);
});

const cases: { code: string; continent: string }[] = [
  { code: 'DE', continent: 'EU' },
  { code: 'US', continent: 'NA' },
  { code: 'BR', continent: 'SA' },
  { code: 'ZA', continent: 'AF' },
  { code: 'JP', continent: 'AS' },
  { code: 'AU', continent: 'OC' },
  { code: 'AQ', continent: 'AN' },
  // The borderline cases, as MaxMind's databases assign them.
  { code: 'RU', continent: 'EU' },
  { code: 'TR', continent: 'AS' },
  { code: 'CY', continent: 'EU' },
  { code: 'GE', continent: 'AS' },
  { code: 'EG', continent: 'AF' },
  { code: 'PA', continent: 'NA' },
  { code: 'TL', continent: 'OC' },
  { code: 'XK', continent: 'EU' },
];
for (const c of cases) {
  test(`${c.code} lies in ${c.continent}`, () => {
    assert.equal(continentCodeOf(CONTINENT_OF_COUNTRY[countryIndex(c.code)]), c.continent);
  });
}

test('country indexes are case-insensitive and round-trip to the upper-case code', () => {
  assert.equal(countryIndex('de'), countryIndex('DE'));
  assert.equal(countryIndexOfChars(0x64, 0x45), countryIndex('DE'));
  for (let i = 0; i < COUNTRY_SLOTS; i++) assert.equal(countryIndex(countryCodeOf(i)), i);
  assert.equal(countryCodeOf(0), 'AA');
  assert.equal(countryCodeOf(675), 'ZZ');
});

test('text that is not two ASCII letters has no country index', () => {
  for (const text of ['', 'D', 'DEU', 'D1', '@A', '[A', 'a`', 'É']) assert.equal(countryIndex(text), -1, JSON.stringify(text));
  assert.throws(() => countryCodeOf(676), RangeError);
});

test('continent indexes follow CONTINENT_CODES, any case', () => {
  CONTINENT_CODES.forEach((code, i) => {
    assert.equal(continentIndex(code), i);
    assert.equal(continentIndex(code.toLowerCase()), i);
  });
  assert.equal(continentIndex('XX'), -1);
  assert.throws(() => continentCodeOf(7), RangeError);
});
