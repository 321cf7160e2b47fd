// Test helper for the health tests: spec factory, servers on loopback port 0,
// generated certificates, a recording sink and a captured pino logger.

import type { webcrypto } from 'node:crypto';
import { EventEmitter, once } from 'node:events';
import type { Server as NetServer, AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import type { TestContext } from 'node:test';
// @peculiar/x509 resolves its ASN.1 codecs through tsyringe, which needs a Reflect metadata polyfill loaded first.
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import type { CheckedServer, CheckSpec, HealthSink } from '../../src/health/types.ts';
import { createLogger, type Logger } from '../../src/log/logger.ts';

/** Returns a complete CheckSpec: an HTTP check of 127.0.0.1 with the documented defaults, then `overrides`. */
export function makeSpec(overrides: Partial<CheckSpec> = {}): CheckSpec {
  return {
    type: 'http',
    address: '127.0.0.1',
    port: 1,
    host: null,
    path: '/health',
    expectedStatus: [[200, 399]],
    headers: {},
    bodyMatch: null,
    tlsVerify: true,
    keepAlive: false,
    intervalMs: 1000,
    timeoutMs: 2000,
    failureThreshold: 3,
    successThreshold: 2,
    emaAlpha: 0.3,
    ...overrides,
  };
}

/** Listens on `host` port 0, returns the bound port, and closes the server (and its connections) in t.after(). */
export async function listen(t: TestContext, server: NetServer, host = '127.0.0.1'): Promise<number> {
  server.listen(0, host);
  await once(server, 'listening');
  t.after(() => {
    (server as NetServer & { closeAllConnections?: () => void }).closeAllConnections?.();
    server.close();
  });
  return (server.address() as AddressInfo).port;
}

/** Returns a port on `host` that nothing listens on (bound, then closed). */
export async function closedPort(host = '127.0.0.1'): Promise<number> {
  const { createServer } = await import('node:net');
  const server = createServer();
  server.listen(0, host);
  await once(server, 'listening');
  const port = (server.address() as AddressInfo).port;
  server.close();
  await once(server, 'close');
  return port;
}

export interface Certificates {
  /** A CA certificate (PEM) and a leaf it signed for health.test, 127.0.0.1 and ::1. */
  readonly caPem: string;
  readonly leafPem: string;
  readonly leafKeyPem: string;
  /** A self-signed certificate for the same names, signed by nobody anyone trusts. */
  readonly selfSignedPem: string;
  readonly selfSignedKeyPem: string;
}

const SIGNING = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
const NAMES = [
  { type: 'dns' as const, value: 'health.test' },
  { type: 'ip' as const, value: '127.0.0.1' },
  { type: 'ip' as const, value: '::1' },
];

function keyPem(der: ArrayBuffer): string {
  const b64 = Buffer.from(der).toString('base64').replace(/(.{64})/g, '$1\n');
  return `-----BEGIN PRIVATE KEY-----\n${b64}\n-----END PRIVATE KEY-----\n`;
}

let certificates: Promise<Certificates> | null = null;
let caSigner: { subject: string; key: webcrypto.CryptoKey } | null = null;

/**
 * Returns a leaf for the same names, signed by the CA of testCertificates(),
 * valid over [notBefore, notAfter] (X.509 keeps whole seconds).
 */
export async function leafCertificate(notBefore: Date, notAfter: Date): Promise<{ certPem: string; keyPem: string }> {
  await testCertificates();
  const signer = caSigner as { subject: string; key: webcrypto.CryptoKey };
  const keys = (await crypto.subtle.generateKey(SIGNING, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  const leaf = await x509.X509CertificateGenerator.create({
    serialNumber: Date.now().toString(16),
    subject: 'CN=health.test',
    issuer: signer.subject,
    notBefore,
    notAfter,
    signingAlgorithm: SIGNING,
    publicKey: keys.publicKey,
    signingKey: signer.key,
    extensions: [
      new x509.BasicConstraintsExtension(false),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
      new x509.SubjectAlternativeNameExtension(NAMES),
    ],
  });
  return { certPem: leaf.toString('pem'), keyPem: keyPem(await crypto.subtle.exportKey('pkcs8', keys.privateKey)) };
}

/** Generates (once per process) a CA, a leaf signed by it, and a self-signed certificate, valid from an hour ago for a day. */
export function testCertificates(): Promise<Certificates> {
  certificates ??= (async () => {
    x509.cryptoProvider.set(globalThis.crypto);
    const notBefore = new Date(Date.now() - 3600_000);
    const notAfter = new Date(Date.now() + 86400_000);
    const caKeys = (await crypto.subtle.generateKey(SIGNING, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
    const ca = await x509.X509CertificateGenerator.createSelfSigned({
      serialNumber: '01',
      name: 'CN=OpenGSLB test CA',
      notBefore,
      notAfter,
      signingAlgorithm: SIGNING,
      keys: caKeys,
      extensions: [
        new x509.BasicConstraintsExtension(true, 0, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      ],
    });
    caSigner = { subject: ca.subject, key: caKeys.privateKey };
    const leafKeys = (await crypto.subtle.generateKey(SIGNING, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
    const leaf = await x509.X509CertificateGenerator.create({
      serialNumber: '02',
      subject: 'CN=health.test',
      issuer: ca.subject,
      notBefore,
      notAfter,
      signingAlgorithm: SIGNING,
      publicKey: leafKeys.publicKey,
      signingKey: caKeys.privateKey,
      extensions: [
        new x509.BasicConstraintsExtension(false),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
        new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
        new x509.SubjectAlternativeNameExtension(NAMES),
      ],
    });
    const selfKeys = (await crypto.subtle.generateKey(SIGNING, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
    const selfSigned = await x509.X509CertificateGenerator.createSelfSigned({
      serialNumber: '03',
      name: 'CN=health.test',
      notBefore,
      notAfter,
      signingAlgorithm: SIGNING,
      keys: selfKeys,
      extensions: [new x509.SubjectAlternativeNameExtension(NAMES)],
    });
    return {
      caPem: ca.toString('pem'),
      leafPem: leaf.toString('pem'),
      leafKeyPem: keyPem(await crypto.subtle.exportKey('pkcs8', leafKeys.privateKey)),
      selfSignedPem: selfSigned.toString('pem'),
      selfSignedKeyPem: keyPem(await crypto.subtle.exportKey('pkcs8', selfKeys.privateKey)),
    };
  })();
  return certificates;
}

export type SinkCall =
  | { kind: 'health'; slots: readonly number[]; state: number }
  | { kind: 'latency'; slots: readonly number[]; emaMicros: number; samples: number }
  | { kind: 'lastUp'; slots: readonly number[]; unixSec: number };

/** A HealthSink that records every call and emits it as a 'call' event. */
export class RecordingSink extends EventEmitter implements HealthSink {
  readonly calls: SinkCall[] = [];
  setHealth(slots: readonly number[], state: number): void {
    this.#record({ kind: 'health', slots: [...slots], state });
  }
  setLatency(slots: readonly number[], emaMicros: number, samples: number): void {
    this.#record({ kind: 'latency', slots: [...slots], emaMicros, samples });
  }
  setLastUp(slots: readonly number[], unixSec: number): void {
    this.#record({ kind: 'lastUp', slots: [...slots], unixSec });
  }
  /** Returns the health calls only, as [slots, state] pairs. */
  health(): [readonly number[], number][] {
    return this.calls.filter((c) => c.kind === 'health').map((c) => [c.slots, (c as { state: number }).state]);
  }
  /** Resolves with the first call (already recorded or future) matching `match`; rejects after `timeoutMs`. */
  waitFor(match: (c: SinkCall) => boolean, timeoutMs = 5000): Promise<SinkCall> {
    const found = this.calls.find(match);
    if (found !== undefined) return Promise.resolve(found);
    return new Promise((resolve, reject) => {
      const onCall = (c: SinkCall): void => {
        if (!match(c)) return;
        clearTimeout(timer);
        this.off('call', onCall);
        resolve(c);
      };
      const timer = setTimeout(() => {
        this.off('call', onCall);
        reject(new Error(`no matching sink call within ${timeoutMs} ms; calls: ${JSON.stringify(this.calls)}`));
      }, timeoutMs);
      this.on('call', onCall);
    });
  }
  #record(c: SinkCall): void {
    this.calls.push(c);
    this.emit('call', c);
  }
}

/** Creates a pino logger (level debug) whose JSON lines are collected raw in `lines` and parsed in `records`. */
export function captureLogger(level = 'debug'): { logger: Logger; records: Record<string, unknown>[]; lines: string[] } {
  const records: Record<string, unknown>[] = [];
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString('utf8').split('\n')) {
        if (line === '') continue;
        lines.push(line);
        records.push(JSON.parse(line) as Record<string, unknown>);
      }
      done();
    },
  });
  return { logger: createLogger({ level: level as 'debug', format: 'json' }, stream), records, lines };
}

/** Resolves when `check()` turns true, re-checking on every `emitter` event `name`; rejects after `timeoutMs`. */
export function until(emitter: EventEmitter, name: string, check: () => boolean, timeoutMs = 5000): Promise<void> {
  if (check()) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const on = (): void => {
      if (!check()) return;
      clearTimeout(timer);
      emitter.off(name, on);
      resolve();
    };
    const timer = setTimeout(() => {
      emitter.off(name, on);
      reject(new Error(`condition not met within ${timeoutMs} ms`));
    }, timeoutMs);
    emitter.on(name, on);
  });
}

/** A server behind a check target, named by its "region/address:port" label (the key is the label; tests need nothing else). */
export function named(label: string): CheckedServer {
  const slash = label.indexOf('/');
  return { key: label, label, region: slash < 0 ? label : label.slice(0, slash), endpoint: slash < 0 ? label : label.slice(slash + 1) };
}
