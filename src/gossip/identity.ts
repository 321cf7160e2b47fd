// Main thread, cold path. The agent's identity: a key pair and a self-signed
// certificate created on first start (agent.identity.key_path, cert_path;
// the key file is 0600), loaded afterwards, rotated before it expires. The
// agent id is written into the certificate's CN when the identity is first
// created and carried over by every rotation, so it never changes.
// Also the overwatch-side parsing of a presented certificate.

// @peculiar/x509 resolves its ASN.1 codecs through tsyringe, which needs a Reflect metadata polyfill loaded first.
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import {
  createHash, createPrivateKey, createPublicKey, generateKeyPairSync, randomBytes, webcrypto, X509Certificate, type KeyObject,
} from 'node:crypto';
import { chmod, mkdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { OpenGslbError } from '../lib/errors.ts';
import { signBody, verifyBody } from './wire.ts';

/** Key types an agent may use: Ed25519 (the default: deterministic, fast) or ECDSA P-256 (the Go original's). */
export type AgentKeyAlgorithm = 'ed25519' | 'p256';

/** Validity of a new certificate. */
export const CERT_VALIDITY_DAYS = 365;
/** Rotate when less than this is left (the Go original's 30 days). */
export const ROTATE_BEFORE_DAYS = 30;
/** notBefore is set this far in the past so an overwatch whose clock is a little behind still accepts a new certificate. */
const NOT_BEFORE_SLACK_MS = 3600_000;
const DAY_MS = 86_400_000;
const CN_PREFIX = 'CN=';
const ORGANISATION = 'OpenGSLB Agent';

/** The agent's key and certificate, and the one being rotated out, if any. */
export interface AgentIdentity {
  /** Stable id: "<region>-<12 hex digits of the first public key's SHA-256>", from the certificate's CN. */
  readonly agentId: string;
  /** The certificate, DER. */
  readonly certificate: Buffer;
  /** Hex SHA-256 of the DER certificate. */
  readonly fingerprint: string;
  readonly privateKey: KeyObject;
  readonly notBeforeMs: number;
  readonly notAfterMs: number;
  /**
   * The previous key while a rotation is in progress: registrations carry a
   * second signature by it, so overwatches that pinned the old certificate
   * accept the new one. `notAfterMs` is the previous certificate's expiry:
   * after it the old key approves nothing (overwatches refuse a rotation
   * signed by an expired pinned key). null when no rotation is pending.
   */
  readonly previous: { readonly privateKey: KeyObject; readonly fingerprint: string; readonly notAfterMs: number } | null;
}

/** Where the identity lives and how a new one is made. */
export interface IdentityFiles {
  readonly certPath: string;
  readonly keyPath: string;
  /** Region for a new agent id (agent.identity.region). */
  readonly region: string;
  readonly algorithm?: AgentKeyAlgorithm;
  /** Clock for validity (tests); epoch milliseconds. */
  readonly now?: () => number;
}

/** Computes the fingerprint of a DER certificate: hex SHA-256. */
export function certificateFingerprint(der: Uint8Array): string {
  return createHash('sha256').update(der).digest('hex');
}

function identityError(message: string, cause?: unknown): OpenGslbError {
  return new OpenGslbError('OPENGSLB_ERR_AGENT_IDENTITY', message, cause === undefined ? undefined : { cause });
}

function previousPath(path: string): string {
  return `${path}.previous`;
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw identityError(`cannot read ${path}: ${(err as Error).message}`, err);
  }
}

/** Writes a file through a temporary name and rename, so a crash never leaves half a key. */
async function writeAtomically(path: string, data: string, mode: number): Promise<void> {
  const tmp = `${path}.tmp-${process.pid}`;
  try {
    await mkdir(dirname(path), { recursive: true, mode: 0o755 });
    await writeFile(tmp, data, { mode, flag: 'w' });
    await chmod(tmp, mode);
    await rename(tmp, path);
  } catch (err) {
    await rm(tmp, { force: true });
    throw identityError(`cannot write ${path}: ${(err as Error).message}; make its directory writable by this user or point the setting elsewhere`, err);
  }
}

async function readKey(path: string): Promise<KeyObject> {
  let info;
  try {
    info = await stat(path);
  } catch (err) {
    throw identityError(`cannot read the agent key ${path}: ${(err as Error).message}`, err);
  }
  if ((info.mode & 0o077) !== 0) {
    throw identityError(`the agent key ${path} has mode ${(info.mode & 0o777).toString(8).padStart(4, '0')}, expected 0600 (readable by its owner only): chmod 600 ${path}`);
  }
  try {
    const key = createPrivateKey(await readFile(path));
    if (key.asymmetricKeyType !== 'ed25519' && !(key.asymmetricKeyType === 'ec' && key.asymmetricKeyDetails?.namedCurve === 'prime256v1')) {
      throw new Error(`it is a ${key.asymmetricKeyType} key, expected Ed25519 or ECDSA P-256`);
    }
    return key;
  } catch (err) {
    throw identityError(`cannot use the agent key ${path}: ${(err as Error).message}`, err);
  }
}

function newKey(algorithm: AgentKeyAlgorithm): KeyObject {
  return algorithm === 'ed25519'
    ? generateKeyPairSync('ed25519').privateKey
    : generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey;
}

/** Derives a new agent id from the region and the public key: stable for the life of the identity, not secret. */
function deriveAgentId(region: string, key: KeyObject): string {
  const spki = createPublicKey(key).export({ type: 'spki', format: 'der' });
  const hex = createHash('sha256').update(spki).digest('hex').slice(0, 12);
  return region === '' ? hex : `${region}-${hex}`;
}

/** Creates a self-signed certificate (CN = agent id, client-auth EKU) for `key`; returns DER. */
async function createCertificate(agentId: string, key: KeyObject, nowMs: number): Promise<Buffer> {
  const ed = key.asymmetricKeyType === 'ed25519';
  const algorithm = ed ? { name: 'Ed25519' } : { name: 'ECDSA', namedCurve: 'P-256' };
  const signingAlgorithm = ed ? { name: 'Ed25519' } : { name: 'ECDSA', hash: 'SHA-256' };
  const keys = {
    privateKey: key.toCryptoKey(algorithm, false, ['sign']),
    publicKey: createPublicKey(key).toCryptoKey(algorithm, true, ['verify']),
  } as webcrypto.CryptoKeyPair;
  // A positive 128-bit serial (RFC 5280 §4.1.2.2: at most 20 octets, non-negative).
  const serial = randomBytes(16);
  serial[0] &= 0x7f;
  const cert = await x509.X509CertificateGenerator.createSelfSigned(
    {
      serialNumber: serial.toString('hex'),
      name: `${CN_PREFIX}${agentId}, O=${ORGANISATION}`,
      notBefore: new Date(nowMs - NOT_BEFORE_SLACK_MS),
      notAfter: new Date(nowMs + CERT_VALIDITY_DAYS * DAY_MS),
      signingAlgorithm,
      keys,
      extensions: [
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
        new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.clientAuth]),
      ],
    },
    webcrypto as unknown as Parameters<typeof x509.X509CertificateGenerator.createSelfSigned>[1],
  );
  return Buffer.from(cert.rawData);
}

function toPem(der: Buffer): string {
  const lines = der.toString('base64').match(/.{1,64}/g) ?? [];
  return `-----BEGIN CERTIFICATE-----\n${lines.join('\n')}\n-----END CERTIFICATE-----\n`;
}

/** What parsing a presented certificate gives: its id, key and validity, or why it is unusable. */
export type ParsedCertificate =
  | {
    readonly ok: true;
    readonly agentId: string;
    readonly publicKey: KeyObject;
    readonly fingerprint: string;
    readonly notBeforeMs: number;
    readonly notAfterMs: number;
  }
  | { readonly ok: false; readonly reason: 'certificate_invalid' | 'certificate_expired'; readonly detail: string };

/**
 * Parses a DER certificate as an agent certificate: self-signed (its
 * signature verifies with its own key), an Ed25519 or P-256 key, a CN that
 * is the agent id, and (with `nowMs`) inside its validity period. Never throws.
 */
export function parseAgentCertificate(der: Uint8Array, nowMs: number | null): ParsedCertificate {
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(der);
  } catch (err) {
    return { ok: false, reason: 'certificate_invalid', detail: `not a DER certificate: ${(err as Error).message}` };
  }
  try {
    const publicKey = cert.publicKey;
    const usable = publicKey.asymmetricKeyType === 'ed25519'
      || (publicKey.asymmetricKeyType === 'ec' && publicKey.asymmetricKeyDetails?.namedCurve === 'prime256v1');
    if (!usable) return { ok: false, reason: 'certificate_invalid', detail: `a ${publicKey.asymmetricKeyType} key, expected Ed25519 or P-256` };
    if (!cert.verify(publicKey)) return { ok: false, reason: 'certificate_invalid', detail: 'not self-signed by its own key' };
    const cn = cert.subject.split('\n').find((part) => part.startsWith(CN_PREFIX))?.slice(CN_PREFIX.length);
    if (cn === undefined || cn === '') return { ok: false, reason: 'certificate_invalid', detail: 'no CN (the agent id)' };
    const notBeforeMs = cert.validFromDate.getTime();
    const notAfterMs = cert.validToDate.getTime();
    if (nowMs !== null && (nowMs < notBeforeMs || nowMs > notAfterMs)) {
      return { ok: false, reason: 'certificate_expired', detail: `valid ${cert.validFromDate.toISOString()} to ${cert.validToDate.toISOString()}` };
    }
    return { ok: true, agentId: cn, publicKey, fingerprint: cert.fingerprint256.replaceAll(':', '').toLowerCase(), notBeforeMs, notAfterMs };
  } catch (err) {
    return { ok: false, reason: 'certificate_invalid', detail: (err as Error).message };
  }
}

async function loadPair(certPath: string, keyPath: string): Promise<{ certificate: Buffer; privateKey: KeyObject; parsed: Extract<ParsedCertificate, { ok: true }> }> {
  const privateKey = await readKey(keyPath);
  let certificate: Buffer;
  try {
    certificate = Buffer.from(new X509Certificate(await readFile(certPath)).raw);
  } catch (err) {
    throw identityError(`cannot read the agent certificate ${certPath}: ${(err as Error).message}`, err);
  }
  const parsed = parseAgentCertificate(certificate, null);
  if (!parsed.ok) throw identityError(`the agent certificate ${certPath} is not usable: ${parsed.detail}`);
  // The pair belongs together when the certificate's key verifies a signature made by the key file.
  const probe = randomBytes(32);
  if (!verifyBody(parsed.publicKey, probe, signBody(privateKey, probe))) {
    throw identityError(`the agent certificate ${certPath} does not belong to the key ${keyPath}; delete both to create a new identity (overwatches then see a new agent)`);
  }
  return { certificate, privateKey, parsed };
}

/**
 * A rotation writes the previous pair, then the new key, then its certificate,
 * each file atomically. A stop between the last two leaves the new key beside
 * the old certificate, which is also `<cert_path>.previous`: the rotation is
 * finished here (a certificate for the new key under the same agent id) rather
 * than refused as a pair that does not belong together.
 */
async function finishInterruptedRotation(files: IdentityFiles, nowMs: number): Promise<void> {
  const previousCertPath = previousPath(files.certPath);
  if (!(await exists(previousCertPath)) || !(await exists(previousPath(files.keyPath)))) return;
  let current: ParsedCertificate;
  let previous: ParsedCertificate;
  try {
    current = parseAgentCertificate(new X509Certificate(await readFile(files.certPath)).raw, null);
    previous = parseAgentCertificate(new X509Certificate(await readFile(previousCertPath)).raw, null);
  } catch {
    // Unreadable or damaged: loadPair() says which file and why.
    return;
  }
  if (!current.ok || !previous.ok || current.fingerprint !== previous.fingerprint) return;
  const key = await readKey(files.keyPath);
  const probe = randomBytes(32);
  if (verifyBody(current.publicKey, probe, signBody(key, probe))) return;
  await writeAtomically(files.certPath, toPem(await createCertificate(current.agentId, key, nowMs)), 0o644);
}

async function loadPrevious(files: IdentityFiles): Promise<AgentIdentity['previous']> {
  const certPath = previousPath(files.certPath);
  const keyPath = previousPath(files.keyPath);
  if (!(await exists(certPath)) || !(await exists(keyPath))) return null;
  const { privateKey, parsed } = await loadPair(certPath, keyPath);
  return { privateKey, fingerprint: parsed.fingerprint, notAfterMs: parsed.notAfterMs };
}

/**
 * Loads the agent's identity from `certPath`/`keyPath`, creating what is
 * missing: no files → a new key (0600) and certificate (0644) with a new
 * agent id; a key without a certificate → a certificate for that key. A
 * rotation's previous pair (`<path>.previous`) is loaded too, and a rotation
 * stopped between its new key and its certificate is finished. An expired
 * certificate is loaded as it is: call needsRotation() and rotateAgentIdentity().
 * Throws OPENGSLB_ERR_AGENT_IDENTITY naming the file (unreadable, key
 * readable by others, certificate without its key, pair that does not match).
 */
export async function loadOrCreateAgentIdentity(files: IdentityFiles): Promise<{ readonly identity: AgentIdentity; readonly created: boolean }> {
  const now = files.now ?? Date.now;
  const haveCert = await exists(files.certPath);
  const haveKey = await exists(files.keyPath);
  if (haveCert && !haveKey) {
    throw identityError(`the agent certificate ${files.certPath} exists but its key ${files.keyPath} does not; restore the key, or delete the certificate to create a new identity (overwatches then see a new agent)`);
  }
  let created = false;
  if (!haveKey) {
    const key = newKey(files.algorithm ?? 'ed25519');
    const agentId = deriveAgentId(files.region, key);
    const der = await createCertificate(agentId, key, now());
    await writeAtomically(files.keyPath, key.export({ type: 'pkcs8', format: 'pem' }) as string, 0o600);
    await writeAtomically(files.certPath, toPem(der), 0o644);
    created = true;
  } else if (!haveCert) {
    const key = await readKey(files.keyPath);
    await writeAtomically(files.certPath, toPem(await createCertificate(deriveAgentId(files.region, key), key, now())), 0o644);
    created = true;
  } else {
    await finishInterruptedRotation(files, now());
  }
  const { certificate, privateKey, parsed } = await loadPair(files.certPath, files.keyPath);
  return {
    identity: {
      agentId: parsed.agentId,
      certificate,
      fingerprint: parsed.fingerprint,
      privateKey,
      notBeforeMs: parsed.notBeforeMs,
      notAfterMs: parsed.notAfterMs,
      previous: await loadPrevious(files),
    },
    created,
  };
}

/**
 * Creates an identity in memory only (no files): a new key and a
 * self-signed certificate with a new agent id. For simulators and tests; an
 * agent uses loadOrCreateAgentIdentity so its identity survives restarts.
 */
export async function createAgentIdentity(options: { readonly region: string; readonly algorithm?: AgentKeyAlgorithm; readonly now?: () => number }): Promise<AgentIdentity> {
  const key = newKey(options.algorithm ?? 'ed25519');
  const der = await createCertificate(deriveAgentId(options.region, key), key, (options.now ?? Date.now)());
  const parsed = parseAgentCertificate(der, null);
  if (!parsed.ok) throw identityError(`a new certificate is not usable: ${parsed.detail}`);
  return {
    agentId: parsed.agentId, certificate: der, fingerprint: parsed.fingerprint, privateKey: key, notBeforeMs: parsed.notBeforeMs, notAfterMs: parsed.notAfterMs, previous: null,
  };
}

/** Tells whether the certificate expires within `beforeDays` (default ROTATE_BEFORE_DAYS) of `nowMs`. */
export function needsRotation(identity: AgentIdentity, nowMs: number, beforeDays = ROTATE_BEFORE_DAYS): boolean {
  return identity.notAfterMs - nowMs < beforeDays * DAY_MS;
}

/**
 * Replaces the identity with a new key and certificate under the same agent
 * id. The current pair moves to `<path>.previous` (replacing an older one),
 * and the returned identity's `previous` holds its key, so the next
 * registrations carry the old key's signature. Call forgetPreviousIdentity()
 * once every overwatch has acknowledged a registration with the new
 * certificate (direct links), or once the previous certificate has expired
 * (its key approves nothing any more; the only rule on the NATS bus, whose
 * acks do not name the overwatch). Throws
 * OPENGSLB_ERR_AGENT_IDENTITY when a file cannot be written.
 */
export async function rotateAgentIdentity(files: IdentityFiles, current: AgentIdentity): Promise<AgentIdentity> {
  const now = files.now ?? Date.now;
  const key = newKey(files.algorithm ?? (current.privateKey.asymmetricKeyType === 'ec' ? 'p256' : 'ed25519'));
  const der = await createCertificate(current.agentId, key, now());
  await writeAtomically(previousPath(files.keyPath), current.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string, 0o600);
  await writeAtomically(previousPath(files.certPath), toPem(current.certificate), 0o644);
  await writeAtomically(files.keyPath, key.export({ type: 'pkcs8', format: 'pem' }) as string, 0o600);
  await writeAtomically(files.certPath, toPem(der), 0o644);
  const parsed = parseAgentCertificate(der, null);
  if (!parsed.ok) throw identityError(`the new certificate ${files.certPath} is not usable: ${parsed.detail}`);
  return {
    agentId: current.agentId,
    certificate: der,
    fingerprint: parsed.fingerprint,
    privateKey: key,
    notBeforeMs: parsed.notBeforeMs,
    notAfterMs: parsed.notAfterMs,
    previous: { privateKey: current.privateKey, fingerprint: current.fingerprint, notAfterMs: current.notAfterMs },
  };
}

/** Deletes the rotated-out pair and returns the identity without `previous`. */
export async function forgetPreviousIdentity(files: IdentityFiles, identity: AgentIdentity): Promise<AgentIdentity> {
  for (const path of [previousPath(files.keyPath), previousPath(files.certPath)]) {
    try {
      await rm(path, { force: true });
    } catch (err) {
      throw identityError(`cannot delete the rotated-out ${path}: ${(err as Error).message}; expected a file this user may delete (its directory writable), or delete it by hand`, err);
    }
  }
  return { ...identity, previous: null };
}
