// Any thread, built once at import. ISO 3166-1 alpha-2 country codes, the
// continent each lies on, and the small integer indexes the geo tables use
// for both (so the hot path compares numbers, never strings).
//
// The assignment of countries to continents follows the one MaxMind's
// GeoIP2/GeoLite2 databases carry in `continent.code` (GeoNames' continents):
// Russia is EU, Turkey AS, Cyprus EU, Armenia/Azerbaijan/Georgia AS,
// Christmas Island OC, Timor-Leste OC, Panama and the Caribbean NA. A database
// that gives only the country (DB-IP lite: `country_code`) gets its continent
// from this table, so both kinds of database route a client the same way.

/** The seven continent codes, in index order (index = position). */
export const CONTINENT_CODES = ['AF', 'AN', 'AS', 'EU', 'NA', 'OC', 'SA'] as const;

/** A continent code. */
export type ContinentCode = (typeof CONTINENT_CODES)[number];

/** Number of country index slots: every pair of letters A–Z, (c0 − 65) × 26 + (c1 − 65). */
export const COUNTRY_SLOTS = 676;

/** The countries of each continent: the 249 ISO 3166-1 alpha-2 codes plus XK (Kosovo, user-assigned, used by GeoIP databases). */
const COUNTRIES_BY_CONTINENT: Readonly<Record<ContinentCode, string>> = {
  AF: 'AO BF BI BJ BW CD CF CG CI CM CV DJ DZ EG EH ER ET GA GH GM GN GQ GW KE KM LR LS LY MA MG ML MR MU MW MZ NA NE NG RE RW SC SD SH SL SN SO SS ST SZ TD TG TN TZ UG YT ZA ZM ZW',
  AN: 'AQ BV GS HM TF',
  AS: 'AE AF AM AZ BD BH BN BT CC CN GE HK ID IL IN IO IQ IR JO JP KG KH KP KR KW KZ LA LB LK MM MN MO MV MY NP OM PH PK PS QA SA SG SY TH TJ TM TR TW UZ VN YE',
  EU: 'AD AL AT AX BA BE BG BY CH CY CZ DE DK EE ES FI FO FR GB GG GI GR HR HU IE IM IS IT JE LI LT LU LV MC MD ME MK MT NL NO PL PT RO RS RU SE SI SJ SK SM UA VA XK',
  NA: 'AG AI AW BB BL BM BQ BS BZ CA CR CU CW DM DO GD GL GP GT HN HT JM KN KY LC MF MQ MS MX NI PA PM PR SV SX TC TT US VC VG VI',
  OC: 'AS AU CK CX FJ FM GU KI MH MP NC NF NR NU NZ PF PG PN PW SB TK TL TO TV UM VU WF WS',
  SA: 'AR BO BR CL CO EC FK GF GY PE PY SR UY VE',
};

/**
 * CONTINENT_OF_COUNTRY[countryIndex] is the continent index of that country,
 * or -1 for a pair of letters that is not an assigned code. Read-only by
 * convention (a typed array cannot be frozen).
 */
export const CONTINENT_OF_COUNTRY: Int8Array = buildContinentTable();

function buildContinentTable(): Int8Array {
  const table = new Int8Array(COUNTRY_SLOTS).fill(-1);
  CONTINENT_CODES.forEach((continent, k) => {
    for (const code of COUNTRIES_BY_CONTINENT[continent].split(' ')) {
      const i = countryIndex(code);
      if (i < 0 || table[i] !== -1) throw new Error(`continents.ts: bad or repeated country code ${code}`);
      table[i] = k;
    }
  });
  return table;
}

/** Returns the index (0..675) of a two-letter code, any case, or -1 when `code` is not two ASCII letters. Cold path (takes a string). */
export function countryIndex(code: string): number {
  if (code.length !== 2) return -1;
  return countryIndexOfChars(code.charCodeAt(0), code.charCodeAt(1));
}

/** Returns the index (0..675) of two character codes, any case, or -1 when either is not an ASCII letter. Allocation-free. */
export function countryIndexOfChars(c0: number, c1: number): number {
  const a = (c0 | 0x20) - 0x61;
  const b = (c1 | 0x20) - 0x61;
  if (a < 0 || a > 25 || b < 0 || b > 25) return -1;
  return a * 26 + b;
}

/** Returns the upper-case code of a country index (0..675). Throws RangeError outside that range. */
export function countryCodeOf(index: number): string {
  if (!Number.isInteger(index) || index < 0 || index >= COUNTRY_SLOTS) throw new RangeError(`country index ${index} is outside 0..675`);
  return String.fromCharCode(0x41 + Math.floor(index / 26), 0x41 + (index % 26));
}

/** Returns true when `code` (any case) is an assigned ISO 3166-1 alpha-2 code, or XK. */
export function isKnownCountry(code: string): boolean {
  const i = countryIndex(code);
  return i >= 0 && CONTINENT_OF_COUNTRY[i] >= 0;
}

/** Returns the index (0..6) of a continent code, any case, or -1. */
export function continentIndex(code: string): number {
  return (CONTINENT_CODES as readonly string[]).indexOf(code.toUpperCase());
}

/** Returns the continent code of an index (0..6). Throws RangeError outside that range. */
export function continentCodeOf(index: number): ContinentCode {
  const code = CONTINENT_CODES[index];
  if (code === undefined) throw new RangeError(`continent index ${index} is outside 0..6`);
  return code;
}
