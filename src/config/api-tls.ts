// Cold path, main thread. The admin API's certificate and key (api.tls): read
// and checked when the config is validated (so `config validate`, start-up and
// a reload all refuse a missing, unreadable or mismatched pair with the key's
// file:line:col), and read again by the API when it builds its TLS context.

import { createPrivateKey, X509Certificate } from 'node:crypto';
import { closeSync, constants, fstatSync, openSync, readFileSync } from 'node:fs';
import { createSecureContext } from 'node:tls';

/** A certificate chain and its private key, PEM text as read. */
export interface TlsPair {
  readonly cert: string;
  readonly key: string;
}

/** Which file a problem is about, and what is wrong with it. */
export interface TlsPairProblem {
  readonly which: 'cert_file' | 'key_file';
  readonly message: string;
}

/**
 * Reads a PEM certificate and key and checks that the certificate parses, the
 * key parses, the key is the certificate's, and a TLS context can be built
 * from them. Never throws; messages name
 * the absolute path and never quote the key.
 */
export function readTlsPair(certPath: string, keyPath: string): TlsPair | TlsPairProblem {
  const cert = readText(certPath);
  if (typeof cert !== 'string') return { which: 'cert_file', message: cert.error };
  const key = readText(keyPath);
  if (typeof key !== 'string') return { which: 'key_file', message: key.error };
  let x509: X509Certificate;
  try {
    x509 = new X509Certificate(cert);
  } catch (err) {
    return { which: 'cert_file', message: `${certPath} is not a PEM certificate (${(err as Error).message}), expected "-----BEGIN CERTIFICATE-----"` };
  }
  let privateKey: ReturnType<typeof createPrivateKey>;
  try {
    privateKey = createPrivateKey(key);
  } catch (err) {
    return { which: 'key_file', message: `${keyPath} is not an unencrypted PEM private key (${(err as Error).message}), expected "-----BEGIN PRIVATE KEY-----" or an RSA/EC key` };
  }
  if (!x509.checkPrivateKey(privateKey)) {
    return { which: 'key_file', message: `${keyPath} is not the private key of the certificate in ${certPath} (subject ${x509.subject.replace(/\n/g, ', ')}), expected the key the certificate was issued for` };
  }
  // A pair that parses and matches can still be refused by OpenSSL's security
  // level (an RSA key under 1024 bits, an MD5 signature). Checked here, or the
  // API would throw building its context: at start, past validation, and on a
  // reload only after the new snapshot was already serving.
  try {
    createSecureContext({ cert, key });
  } catch (err) {
    const message = (err as Error).message;
    return {
      which: /key/i.test(message) ? 'key_file' : 'cert_file',
      message: `the TLS stack refuses the certificate in ${certPath} with the key in ${keyPath} (${message}), expected an RSA key of at least 2048 bits or an EC key, signed with SHA-256 or better`,
    };
  }
  return { cert, key };
}

/** Larger than any certificate chain or key: a path to a log or a disk image is refused unread. */
const MAX_PEM_BYTES = 1024 * 1024;

function readText(path: string): string | { error: string } {
  let fd: number | undefined;
  try {
    // O_NONBLOCK and a regular-file check: a FIFO would block this thread until a writer came,
    // and a device such as /dev/zero would be read until memory ran out.
    fd = openSync(path, constants.O_RDONLY | (constants.O_NONBLOCK ?? 0));
    const info = fstatSync(fd);
    if (!info.isFile()) return { error: `${path} ${info.isDirectory() ? 'is a directory' : 'is not a regular file'}, expected a readable PEM file` };
    if (info.size > MAX_PEM_BYTES) return { error: `${path} is ${info.size} bytes, expected a PEM file of at most ${MAX_PEM_BYTES} bytes` };
    return readFileSync(fd, 'utf8');
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    const why = e.code === 'ENOENT' ? 'does not exist' : e.code === 'EACCES' ? 'is not readable by this user' : e.code === 'EISDIR' ? 'is a directory' : e.message;
    return { error: `${path} ${why}, expected a readable PEM file` };
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}
