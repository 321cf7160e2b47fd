// Tests only. Addresses the bundled DB-IP country database places in known
// countries: networks of registries, root-server operators and large hosts
// whose country has not changed in years. test/geo/lookup.test.ts asserts the
// database still says so, so a data update that moves one fails there, by
// name, before it breaks a test that builds on it.

/** An address, the country the bundled database gives it, and that country's continent. */
export interface KnownLocation {
  readonly ip: string;
  readonly country: string;
  readonly continent: string;
  readonly who: string;
}

export const KNOWN_LOCATIONS: readonly KnownLocation[] = [
  { ip: '8.8.8.8', country: 'US', continent: 'NA', who: 'Google Public DNS' },
  { ip: '193.0.14.129', country: 'NL', continent: 'EU', who: 'k.root-servers.net (RIPE NCC)' },
  { ip: '217.160.0.1', country: 'DE', continent: 'EU', who: 'IONOS' },
  { ip: '133.242.0.1', country: 'JP', continent: 'AS', who: 'SAKURA Internet' },
  { ip: '200.160.0.1', country: 'BR', continent: 'SA', who: 'NIC.br' },
  { ip: '41.0.0.1', country: 'ZA', continent: 'AF', who: 'an AFRINIC allocation in South Africa' },
  { ip: '2001:67c:2e8::1', country: 'NL', continent: 'EU', who: 'RIPE NCC' },
  { ip: '2a01:4f8::1', country: 'DE', continent: 'EU', who: 'Hetzner' },
  { ip: '2001:200::1', country: 'JP', continent: 'AS', who: 'WIDE Project' },
  { ip: '2804:14c::1', country: 'BR', continent: 'SA', who: 'a Brazilian ISP' },
];
