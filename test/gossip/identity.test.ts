import { test } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { chmod, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  forgetPreviousIdentity, loadOrCreateAgentIdentity, needsRotation, parseAgentCertificate, rotateAgentIdentity, type AgentKeyAlgorithm,
} from '../../src/gossip/identity.ts';
import { signBody, verifyBody } from '../../src/gossip/wire.ts';
import { tempDir } from './helpers.ts';

for (const algorithm of ['ed25519', 'p256'] as AgentKeyAlgorithm[]) {
  test(`first start creates a ${algorithm} key (0600) and a self-signed certificate whose CN is the agent id`, async (t) => {
    const dir = await tempDir(t);
    const files = { certPath: join(dir, 'sub', 'agent.crt'), keyPath: join(dir, 'sub', 'agent.key'), region: 'eu-west', algorithm };
    const { identity, created } = await loadOrCreateAgentIdentity(files);
    assert.equal(created, true);
    assert.match(identity.agentId, /^eu-west-[0-9a-f]{12}$/);
    assert.equal((await stat(files.keyPath)).mode & 0o777, 0o600);
    assert.equal((await stat(files.certPath)).mode & 0o777, 0o644);
    const cert = new X509Certificate(await readFile(files.certPath));
    assert.ok(cert.verify(cert.publicKey), 'self-signed');
    assert.match(cert.subject, new RegExp(`CN=${identity.agentId}`));
    assert.equal(cert.publicKey.asymmetricKeyType, algorithm === 'ed25519' ? 'ed25519' : 'ec');
    const parsed = parseAgentCertificate(identity.certificate, Date.now());
    assert.ok(parsed.ok);
    assert.equal(parsed.agentId, identity.agentId);
    assert.equal(parsed.fingerprint, identity.fingerprint);
    assert.ok(verifyBody(parsed.publicKey, Buffer.from('x'), signBody(identity.privateKey, Buffer.from('x'))));
  });
}

test('a second start loads the same identity without creating anything', async (t) => {
  const dir = await tempDir(t);
  const files = { certPath: join(dir, 'agent.crt'), keyPath: join(dir, 'agent.key'), region: 'eu-west' };
  const first = await loadOrCreateAgentIdentity(files);
  const second = await loadOrCreateAgentIdentity({ ...files, region: 'another-region' });
  assert.equal(second.created, false);
  assert.equal(second.identity.agentId, first.identity.agentId, 'the id comes from the certificate, not the current region');
  assert.equal(second.identity.fingerprint, first.identity.fingerprint);
  assert.equal(second.identity.previous, null);
});

test('a key without a certificate gets a certificate for that key, keeping the agent id', async (t) => {
  const dir = await tempDir(t);
  const files = { certPath: join(dir, 'agent.crt'), keyPath: join(dir, 'agent.key'), region: 'eu-west' };
  const first = await loadOrCreateAgentIdentity(files);
  await rm(files.certPath);
  const again = await loadOrCreateAgentIdentity(files);
  assert.equal(again.created, true);
  assert.equal(again.identity.agentId, first.identity.agentId);
  assert.notEqual(again.identity.fingerprint, first.identity.fingerprint);
});

test('a key file readable by others is refused, naming the file and chmod 600', async (t) => {
  const dir = await tempDir(t);
  const files = { certPath: join(dir, 'agent.crt'), keyPath: join(dir, 'agent.key'), region: 'eu-west' };
  await loadOrCreateAgentIdentity(files);
  await chmod(files.keyPath, 0o644);
  await assert.rejects(loadOrCreateAgentIdentity(files), (err: Error & { code?: string }) => {
    assert.equal(err.code, 'OPENGSLB_ERR_AGENT_IDENTITY');
    assert.ok(err.message.includes(files.keyPath));
    assert.match(err.message, /mode 0644, expected 0600.*chmod 600/);
    return true;
  });
});

test('a certificate without its key is refused instead of silently making a new identity', async (t) => {
  const dir = await tempDir(t);
  const files = { certPath: join(dir, 'agent.crt'), keyPath: join(dir, 'agent.key'), region: 'eu-west' };
  await loadOrCreateAgentIdentity(files);
  await rm(files.keyPath);
  await assert.rejects(loadOrCreateAgentIdentity(files), /certificate .* exists but its key .* does not/);
});

test('a certificate that belongs to another key is refused', async (t) => {
  const dirA = await tempDir(t);
  const dirB = await tempDir(t);
  const a = { certPath: join(dirA, 'agent.crt'), keyPath: join(dirA, 'agent.key'), region: 'eu-west' };
  const b = { certPath: join(dirB, 'agent.crt'), keyPath: join(dirB, 'agent.key'), region: 'eu-west' };
  await loadOrCreateAgentIdentity(a);
  await loadOrCreateAgentIdentity(b);
  await writeFile(a.certPath, await readFile(b.certPath));
  await assert.rejects(loadOrCreateAgentIdentity(a), /does not belong to the key/);
});

test('a garbage key file is refused with the file named', async (t) => {
  const dir = await tempDir(t);
  const keyPath = join(dir, 'agent.key');
  await writeFile(keyPath, 'not a key', { mode: 0o600 });
  await assert.rejects(loadOrCreateAgentIdentity({ certPath: join(dir, 'agent.crt'), keyPath, region: 'eu-west' }), (err: Error) => {
    assert.ok(err.message.includes(keyPath));
    return true;
  });
});

test('rotation keeps the agent id, makes a new key and keeps the old one as previous until forgotten', async (t) => {
  const dir = await tempDir(t);
  const files = { certPath: join(dir, 'agent.crt'), keyPath: join(dir, 'agent.key'), region: 'eu-west' };
  const { identity } = await loadOrCreateAgentIdentity(files);
  const rotated = await rotateAgentIdentity(files, identity);
  assert.equal(rotated.agentId, identity.agentId);
  assert.notEqual(rotated.fingerprint, identity.fingerprint);
  assert.equal(rotated.previous?.fingerprint, identity.fingerprint);
  assert.equal((await stat(`${files.keyPath}.previous`)).mode & 0o777, 0o600);
  const reloaded = await loadOrCreateAgentIdentity(files);
  assert.equal(reloaded.identity.fingerprint, rotated.fingerprint);
  assert.equal(reloaded.identity.previous?.fingerprint, identity.fingerprint);
  const done = await forgetPreviousIdentity(files, rotated);
  assert.equal(done.previous, null);
  assert.equal((await loadOrCreateAgentIdentity(files)).identity.previous, null);
});

test('a rotation cut off between writing the new key and its certificate is finished at the next start: same agent id, the old key kept as previous, no refusal', async (t) => {
  const dir = await tempDir(t);
  const files = { certPath: join(dir, 'agent.crt'), keyPath: join(dir, 'agent.key'), region: 'eu-west' };
  const { identity } = await loadOrCreateAgentIdentity(files);
  await rotateAgentIdentity(files, identity);
  // What a crash after the new key's rename, before the new certificate's, leaves: the new key beside the old certificate.
  await writeFile(files.certPath, await readFile(`${files.certPath}.previous`));
  const { identity: loaded, created } = await loadOrCreateAgentIdentity(files);
  assert.equal(created, false);
  assert.equal(loaded.agentId, identity.agentId);
  assert.notEqual(loaded.fingerprint, identity.fingerprint, 'a certificate for the new key');
  assert.equal(loaded.previous?.fingerprint, identity.fingerprint, 'the old key signs the hand-over');
  assert.equal((await loadOrCreateAgentIdentity(files)).identity.fingerprint, loaded.fingerprint, 'written, not made again at every start');
});

test('needsRotation is true within 30 days of expiry', async (t) => {
  const dir = await tempDir(t);
  const { identity } = await loadOrCreateAgentIdentity({ certPath: join(dir, 'a.crt'), keyPath: join(dir, 'a.key'), region: 'r' });
  assert.equal(needsRotation(identity, Date.now()), false);
  assert.equal(needsRotation(identity, identity.notAfterMs - 29 * 86_400_000), true);
});

test('parseAgentCertificate refuses garbage, and a certificate outside its validity as expired', async (t) => {
  const dir = await tempDir(t);
  const { identity } = await loadOrCreateAgentIdentity({ certPath: join(dir, 'a.crt'), keyPath: join(dir, 'a.key'), region: 'r' });
  assert.equal((parseAgentCertificate(Buffer.from('garbage'), Date.now()) as { reason: string }).reason, 'certificate_invalid');
  assert.equal((parseAgentCertificate(identity.certificate, identity.notAfterMs + 1) as { reason: string }).reason, 'certificate_expired');
  assert.equal((parseAgentCertificate(identity.certificate, identity.notBeforeMs - 1) as { reason: string }).reason, 'certificate_expired');
  const tampered = Buffer.from(identity.certificate);
  tampered[tampered.length - 10] ^= 0xff; // inside the signature
  assert.equal((parseAgentCertificate(tampered, Date.now()) as { reason: string }).reason, 'certificate_invalid');
});

test('createAgentIdentity makes a usable identity in memory, without files', async () => {
  const { createAgentIdentity } = await import('../../src/gossip/identity.ts');
  const identity = await createAgentIdentity({ region: 'sim', algorithm: 'p256' });
  assert.match(identity.agentId, /^sim-[0-9a-f]{12}$/);
  const parsed = parseAgentCertificate(identity.certificate, Date.now());
  assert.ok(parsed.ok && parsed.agentId === identity.agentId);
  assert.ok(verifyBody(parsed.publicKey, Buffer.from('y'), signBody(identity.privateKey, Buffer.from('y'))));
});
