// The registry's rule for overlapping overrides (Registry.overrideFor and
// authorityOf): the most specific in force decides, (domain, address) over
// the address in every domain over the region; an override decides while it
// is held, even past its end, until the expiry removes it (so DNS, the API and
// explain agree). Plus the stored form: every scope round-trips, and an
// override stored before scopes existed reads as (domain, address).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseConfigText } from '../../src/config/load.ts';
import { overrideKey, regionOverrideKey, serverOverrideKey } from '../../src/registry/keys.ts';
import { fromStored, keyOfTarget, toStored, type Override, type OverrideTarget } from '../../src/registry/overrides.ts';
import { Registry, type ServerRecord } from '../../src/registry/registry.ts';

const YAML = `
dns: { listen_address: "127.0.0.1:0", zones: [example.test] }
regions:
  - { name: eu, servers: [{ address: 192.0.2.1 }, { address: 192.0.2.2 }] }
  - { name: us, servers: [{ address: 192.0.2.3 }, { address: 192.0.2.1, port: 8080 }] }
domains:
  - { name: app.example.test, regions: [eu, us] }
  - { name: web.example.test, regions: [us] }
`;

const NOW = 1_750_000_000_000;

function registry(): { reg: Registry } {
  const reg = new Registry();
  reg.applyConfig(parseConfigText(YAML, 'test.yaml'));
  reg.commit(reg.view());
  return { reg };
}

function override(target: OverrideTarget, healthy: boolean, expiresAtMs: number | null = null): Override {
  return { target, healthy, reason: target.scope, source: 'test', createdAtMs: NOW, expiresAtMs };
}

const DOMAIN: OverrideTarget = { scope: 'domain', service: 'app.example.test', address: '192.0.2.1' };
const SERVER: OverrideTarget = { scope: 'server', address: '192.0.2.1' };
const REGION: OverrideTarget = { scope: 'region', region: 'eu' };

function eu1(reg: Registry): ServerRecord {
  return reg.serverAt('eu', '192.0.2.1', 80) as ServerRecord;
}

for (const c of [
  { name: 'a region override alone decides every server of the region', set: [REGION], expect: 'region' },
  { name: 'a server override beats a region override', set: [REGION, SERVER], expect: 'server' },
  { name: 'a (domain, address) override beats both', set: [REGION, SERVER, DOMAIN], expect: 'domain' },
  { name: 'the order of setting does not matter', set: [DOMAIN, SERVER, REGION], expect: 'domain' },
  { name: 'nothing set: the checks decide', set: [], expect: null },
]) {
  test(`overrideFor: ${c.name}`, () => {
    const { reg } = registry();
    for (const t of c.set) reg.setOverride(override(t, t.scope !== 'region'));
    assert.equal(reg.overrideFor('app.example.test', eu1(reg))?.target.scope ?? null, c.expect);
    assert.equal(reg.authorityOf(eu1(reg), 'app.example.test'), c.expect === null ? 'health_check' : 'override');
  });
}

test('overrideFor: a (domain, address) override leaves the same address in another domain to the wider scopes', () => {
  const { reg } = registry();
  reg.setOverride(override(DOMAIN, false));
  reg.setOverride(override(SERVER, true));
  const us1 = reg.serverAt('us', '192.0.2.1', 8080) as ServerRecord;
  // web.example.test answers 192.0.2.1 through region us (port 8080): the server scope covers the address wherever it is.
  assert.equal(reg.overrideFor('web.example.test', us1)?.target.scope, 'server');
  assert.equal(reg.overrideFor('app.example.test', eu1(reg))?.target.scope, 'domain');
});

test('overrideFor: a region override covers only that region\'s servers, whatever their address', () => {
  const { reg } = registry();
  reg.setOverride(override({ scope: 'region', region: 'us' }, false));
  assert.equal(reg.overrideFor('app.example.test', eu1(reg)), null, '192.0.2.1:80 is in eu');
  assert.equal(reg.overrideFor('web.example.test', reg.serverAt('us', '192.0.2.1', 8080) as ServerRecord)?.target.scope, 'region');
});

test('overrideFor: an override decides while held, whatever the clock says of its end; once removed, the next scope down decides', () => {
  const { reg } = registry();
  reg.setOverride(override(REGION, false));
  reg.setOverride(override(SERVER, true, Date.now() - 1000));
  // The member words DNS reads change only when the expiry removes it: the registry (API, explain) must say the same.
  assert.equal(reg.overrideFor('app.example.test', eu1(reg))?.target.scope, 'server', 'past its end but held: still in force, as in DNS');
  reg.deleteOverride(SERVER);
  assert.equal(reg.overrideFor('app.example.test', eu1(reg))?.target.scope, 'region');
});

test('authorityOf for the server as a whole is override when one decides it in any domain', () => {
  const { reg } = registry();
  const us3 = reg.serverAt('us', '192.0.2.3', 80) as ServerRecord;
  assert.equal(reg.authorityOf(us3, null), 'health_check');
  reg.setOverride(override({ scope: 'domain', service: 'web.example.test', address: '192.0.2.3' }, false));
  assert.equal(reg.authorityOf(us3, null), 'override');
  assert.equal(reg.authorityOf(us3, 'app.example.test'), 'health_check');
});

test('covered says whether the served view answers something an override covers', () => {
  const { reg } = registry();
  assert.equal(reg.covered(DOMAIN), true);
  assert.equal(reg.covered({ scope: 'domain', service: 'web.example.test', address: '192.0.2.2' }), false);
  assert.equal(reg.covered({ scope: 'server', address: '192.0.2.9' }), false);
  assert.equal(reg.covered(REGION), true);
  assert.equal(reg.covered({ scope: 'region', region: 'mars' }), false);
});

test('the keys of the three scopes never meet, and the (domain, address) key is the one earlier versions stored', () => {
  assert.equal(keyOfTarget(DOMAIN), 'app.example.test|192.0.2.1');
  assert.equal(keyOfTarget(DOMAIN), overrideKey('app.example.test', '192.0.2.1'));
  assert.equal(keyOfTarget(SERVER), serverOverrideKey('192.0.2.1'));
  assert.equal(keyOfTarget(REGION), regionOverrideKey('eu'));
  assert.equal(new Set([keyOfTarget(DOMAIN), keyOfTarget(SERVER), keyOfTarget(REGION)]).size, 3);
});

for (const target of [DOMAIN, SERVER, REGION]) {
  test(`the stored form of a ${target.scope} override round-trips, with and without an end`, () => {
    for (const end of [null, NOW + 7_200_000]) {
      const o = override(target, false, end);
      assert.deepEqual(fromStored(toStored(o)), o);
    }
  });
}

test('an override stored by an earlier version (no scope, no end) reads as a (domain, address) override until cleared', () => {
  const old = { service: 'app.example.test', address: '192.0.2.1', healthy: false, reason: 'kernel upgrade', source: 'alice', createdAtMs: NOW };
  assert.deepEqual(fromStored(old), { target: DOMAIN, healthy: false, reason: 'kernel upgrade', source: 'alice', createdAtMs: NOW, expiresAtMs: null });
});
