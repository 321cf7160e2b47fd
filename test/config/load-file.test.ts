import { spawnSync } from 'node:child_process';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfigFile } from '../../src/config/load.ts';
import { checkConfigFilePermissions } from '../../src/config/permissions.ts';
import { ConfigError } from '../../src/config/problems.ts';

const VALID = [
  'regions:',
  '  - name: eu-west',
  '    servers: [{ address: 192.0.2.10 }]',
  'domains:',
  '  - { name: app.example.test, regions: [eu-west] }',
  '',
].join('\n');

const posixOnly = { skip: process.platform === 'win32' ? 'mode bits do not describe Windows ACLs' : false };

/** Creates a temporary directory removed after the test, and returns a path inside it. */
async function tempFile(t: { after: (fn: () => Promise<void>) => void }, name: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'opengslb-config-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return join(dir, name);
}

test('loads a config file with mode 644', posixOnly, async (t) => {
  const file = await tempFile(t, 'ok.yaml');
  await writeFile(file, VALID);
  await chmod(file, 0o644);
  const config = await loadConfigFile(file);
  assert.equal(config.source, file);
  assert.equal(config.domains[0]?.name, 'app.example.test');
});

test('refuses a world-writable config file and names the file and the fix', posixOnly, async (t) => {
  const file = await tempFile(t, 'open.yaml');
  await writeFile(file, VALID);
  await chmod(file, 0o666);
  await assert.rejects(loadConfigFile(file), (err: unknown) => {
    assert.ok(err instanceof ConfigError);
    assert.equal(err.code, 'OPENGSLB_ERR_CONFIG_PERMISSIONS');
    assert.ok(err.message.startsWith(`${file}: is world-writable (mode 666)`), err.message);
    assert.ok(err.message.includes(`chmod o-w ${file}`), err.message);
    assert.ok(err.message.includes('set mode 640 or 600'), err.message);
    assert.deepEqual(err.problems.map((p) => [p.file, p.line, p.col]), [[file, 0, 0]]);
    return true;
  });
});

test('accepts a world-readable file that holds no secret and refuses it when it does', posixOnly, async (t) => {
  const file = await tempFile(t, 'secret.yaml');
  await writeFile(file, VALID);
  await chmod(file, 0o644);
  await checkConfigFilePermissions(file, { holdsSecret: false });
  await assert.rejects(checkConfigFilePermissions(file, { holdsSecret: true }), (err: unknown) => {
    assert.ok(err instanceof ConfigError);
    assert.equal(err.code, 'OPENGSLB_ERR_CONFIG_PERMISSIONS');
    assert.ok(err.message.includes('holds a secret and is world-readable (mode 644)'), err.message);
    return true;
  });
  await chmod(file, 0o640);
  await checkConfigFilePermissions(file, { holdsSecret: true });
});

test('reports a missing config file as a READ error that names it', async (t) => {
  const file = await tempFile(t, 'missing.yaml');
  await assert.rejects(loadConfigFile(file), (err: unknown) => {
    assert.ok(err instanceof ConfigError);
    assert.equal(err.code, 'OPENGSLB_ERR_CONFIG_READ');
    assert.equal(err.message, `${file}: does not exist, expected a readable YAML config file`);
    return true;
  });
});

test('reports a directory given as the config file as a READ error', async (t) => {
  const file = await tempFile(t, 'x');
  const dir = join(file, '..');
  await assert.rejects(loadConfigFile(dir), (err: unknown) => {
    assert.ok(err instanceof ConfigError);
    assert.equal(err.code, 'OPENGSLB_ERR_CONFIG_READ');
    assert.equal(err.message, `${dir}: is not a regular file, expected a YAML config file`);
    return true;
  });
});

test('reports content problems of a loaded file with the path it was given', async (t) => {
  const file = await tempFile(t, 'bad.yaml');
  await writeFile(file, VALID.replace('192.0.2.10', '192.0.2.300'));
  await chmod(file, 0o600);
  await assert.rejects(loadConfigFile(file), (err: unknown) => {
    assert.ok(err instanceof ConfigError);
    assert.equal(err.code, 'OPENGSLB_ERR_CONFIG_INVALID');
    assert.ok(err.message.startsWith(`${file}:3:26: regions[0].servers[0].address: "192.0.2.300" is not an IP address`), err.message);
    return true;
  });
});

// open(2) of a FIFO for reading waits for a writer: a config path, an include or
// a PEM path naming one hung start-up, every later reload and `config validate`.
const withMkfifo = { skip: process.platform === 'win32' ? 'no FIFOs on Windows' : false, timeout: 10_000 };

test('refuses a FIFO as the config file, an include or an api.tls file instead of waiting for a writer', withMkfifo, async (t) => {
  const main = await tempFile(t, 'main.yaml');
  const dir = join(main, '..');
  const fifo = join(dir, 'fifo.yaml');
  assert.equal(spawnSync('mkfifo', ['-m', '640', fifo]).status, 0);
  await assert.rejects(loadConfigFile(fifo), (err: unknown) => {
    assert.ok(err instanceof ConfigError);
    assert.equal(err.code, 'OPENGSLB_ERR_CONFIG_READ');
    assert.equal(err.message, `${fifo}: is not a regular file, expected a YAML config file`);
    return true;
  });
  await writeFile(main, `${VALID}includes: [fifo.yaml]\n`);
  await chmod(main, 0o640);
  await assert.rejects(loadConfigFile(main), (err: unknown) => {
    assert.ok(err instanceof ConfigError);
    assert.equal(err.message, `${main}:6:12: includes[0]: ${fifo} is not a regular file, expected a YAML config file`);
    return true;
  });
  await writeFile(main, `${VALID}api: { enabled: true, tls: { cert_file: fifo.yaml, key_file: fifo.yaml } }\n`);
  await assert.rejects(loadConfigFile(main), (err: unknown) => {
    assert.ok(err instanceof ConfigError);
    assert.ok(err.message.includes(`${main}:6:41: api.tls.cert_file: ${fifo} is not a regular file, expected a readable PEM file`), err.message);
    return true;
  });
});

// A file saved as Latin-1 or UTF-16 was read with its bad bytes replaced by
// U+FFFD: "café" in a TXT record was served as "caf\xEF\xBF\xBD", silently.
test('refuses a file that is not UTF-8 at the line and column of the first bad byte, names UTF-16, and reads a UTF-8 byte-order mark and CRLF line ends', async (t) => {
  const file = await tempFile(t, 'enc.yaml');
  const zone = (txt: string): string => `${VALID}dns:\n  zones:\n    - name: example.test\n      records:\n        - 'note TXT "${txt}"'\n`;
  await writeFile(file, Buffer.concat([Buffer.from(zone('caf').slice(0, -3)), Buffer.from([0xe9]), Buffer.from('"\'\n')]));
  await chmod(file, 0o600);
  await assert.rejects(loadConfigFile(file), (err: unknown) => {
    assert.ok(err instanceof ConfigError);
    assert.equal(err.code, 'OPENGSLB_ERR_CONFIG_INVALID');
    assert.equal(err.message, `${file}:10:25: (root): has the byte 0xE9, which is not UTF-8, expected a UTF-8 text file (convert it, e.g. iconv -f latin1 -t utf-8)`);
    return true;
  });
  await writeFile(file, Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from(VALID, 'utf16le')]));
  await assert.rejects(loadConfigFile(file), (err: unknown) => {
    assert.ok(err instanceof ConfigError);
    assert.equal(err.message, `${file}:1:1: (root): is UTF-16 text (it starts with a UTF-16 byte-order mark), expected a UTF-8 text file (convert it, e.g. iconv -f utf-16 -t utf-8)`);
    return true;
  });
  await writeFile(file, Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(zone('café').replaceAll('\n', '\r\n'))]));
  const config = await loadConfigFile(file);
  // The record's octets (one latin1 character each) are the UTF-8 of "café".
  assert.deepEqual(config.dns.zones[0]?.records.map((r) => r.rdata), [{ type: 'TXT', strings: [Buffer.from('café').toString('latin1')] }]);
});
