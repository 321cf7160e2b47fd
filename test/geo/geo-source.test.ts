// The overwatch's GeoIP database source (src/overwatch/geo-source.ts) with
// real files: the API's first geo question opening the database while a
// reload commits one.

import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { test } from 'node:test';
import { parseConfigText } from '../../src/config/load.ts';
import { BUNDLED_GEOIP_PATH } from '../../src/geo/database.ts';
import { createLogger } from '../../src/log/logger.ts';
import { GeoSource } from '../../src/overwatch/geo-source.ts';
import { maxmindCountry, writeMmdb } from '../helpers/mmdb-writer.ts';

const BASE = ['regions:', '  - name: eu-west', '    servers: [{ address: 192.0.2.10 }]'];

test('a reload that commits a database while the API\'s first geo question is still opening one keeps the committed database', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'opengslb-geo-source-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const path = join(dir, 'GeoLite2-Country.mmdb');
  await writeFile(path, writeMmdb({ databaseType: 'GeoLite2-Country', networks: [{ cidr: '192.0.2.0/24', data: maxmindCountry('DE', 'EU') }] }));
  // Before: no domain routes by geolocation, so the API's question opens the bundled database (8 MB, checked node by node: slow).
  const before = parseConfigText([...BASE, 'domains:', '  - { name: app.example.test, regions: [eu-west] }'].join('\n'), 'before.yaml');
  // After the reload: a geolocation domain reading a small file of our own (fast).
  const after = parseConfigText(
    [...BASE, 'domains:', '  - { name: app.example.test, routing_algorithm: geolocation, regions: [eu-west] }', 'overwatch:', `  geolocation: { database_path: ${JSON.stringify(path)} }`].join('\n'),
    'after.yaml',
  );
  const source = new GeoSource(createLogger({ level: 'info', format: 'json' }, new PassThrough()));
  t.after(() => source.close());
  const handed: SharedArrayBuffer[] = [];
  source.onChange = (sab) => handed.push(sab);

  let opened = false;
  const asking = source.reader(before).then((reader) => {
    opened = true;
    return reader;
  });
  assert.equal(await source.apply(after), null);
  assert.equal(opened, false, 'the reload committed before the API\'s open finished (the race this test is about)');
  const committed = source.buffer;
  assert.equal(source.current?.info.path, path);

  const reader = await asking;
  assert.equal(source.current?.info.path, path, 'the database the reload committed is still in use, not the one the API opened');
  assert.equal(source.buffer, committed);
  assert.ok(handed.length > 0 && handed.at(-1) === committed, 'the workers were last handed the committed database');
  assert.notEqual(source.current?.info.path, BUNDLED_GEOIP_PATH);
  // The reader answers from the committed database.
  assert.equal(reader, source.readerNow());
});

test('a reload naming a database_path in a folder that does not exist keeps the database in use, says SIGHUP is needed, and a SIGHUP once the file is there loads it', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'opengslb-geo-source-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const first = join(dir, 'first.mmdb');
  await writeFile(first, writeMmdb({ networks: [{ cidr: '192.0.2.0/24', data: maxmindCountry('DE', 'EU') }] }));
  const later = join(dir, 'later', 'GeoLite2-Country.mmdb');
  const config = (path: string) =>
    parseConfigText(
      [...BASE, 'domains:', '  - { name: app.example.test, routing_algorithm: geolocation, regions: [eu-west] }', 'overwatch:', `  geolocation: { database_path: ${JSON.stringify(path)} }`].join('\n'),
      'geo.yaml',
    );
  const source = new GeoSource(createLogger({ level: 'info', format: 'json' }, new PassThrough()));
  t.after(() => source.close());
  const handed: SharedArrayBuffer[] = [];
  source.onChange = (sab) => handed.push(sab);
  assert.equal(await source.apply(config(first)), null);
  const inUse = source.buffer;

  const note = await source.apply(config(later));
  assert.match(note ?? '', /later\/GeoLite2-Country\.mmdb: does not exist/);
  assert.match(note ?? '', /first\.mmdb keeps serving/);
  assert.match(note ?? '', /cannot be watched \(ENOENT\): send SIGHUP once the file is in place/);
  assert.equal(source.buffer, inUse);
  assert.equal(source.current?.info.path, first);

  // SIGHUP (the same config again) while the file is still missing: the same note, nothing changes.
  assert.match((await source.apply(config(later))) ?? '', /does not exist.*first\.mmdb keeps serving/);
  assert.equal(source.buffer, inUse);

  await mkdir(join(dir, 'later'));
  await writeFile(later, writeMmdb({ networks: [{ cidr: '192.0.2.0/24', data: maxmindCountry('US', 'NA') }] }));
  assert.equal(await source.apply(config(later)), `GeoIP database: ${later}`);
  assert.equal(source.current?.info.path, later);
  assert.equal(handed.at(-1), source.buffer, 'the workers were handed the configured database');
});
