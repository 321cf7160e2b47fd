// Main thread (overwatch), cold path. With overwatch.bus: operator overrides
// replicated through a JetStream key-value bucket. A write through this
// overwatch's API is applied here first (state store, registry, live slots,
// exactly as without the bus), then put in the bucket; every overwatch
// watches the bucket and applies what the others put. When NATS is away each
// overwatch keeps serving its own copy; writes made meanwhile stay local (the
// put fails and is logged) until they are made again.
//
//   API write ─► local apply ─► kv.put override.<target>   ─┐
//                                                           ▼
//   every overwatch ◄── kv.watch(override.>) ◄── JetStream bucket <prefix>_operator
//        └─ not what it holds already ─► local apply (no put back)

import { Kvm, type KV } from '@nats-io/kv';
import type { BusConfig } from '../config/types.ts';
import type { OverrideTarget } from '../registry/overrides.ts';
import type { StoredOverride } from '../state/store.ts';
import { BusLink, connectionOptions, type BusLinkEvent } from './nats.ts';

/** What the bucket holds for one override key: the override, or null once it was cleared. */
export interface ReplicatedOverride {
  readonly target: OverrideTarget;
  readonly override: StoredOverride | null;
}

export interface OperatorReplicaOptions {
  readonly bus: BusConfig;
  readonly name: string;
  /** An override put or deleted in the bucket (by any overwatch, this one included: compare before applying). */
  readonly onOverride: (change: ReplicatedOverride) => void;
  readonly onEvent?: (event: BusLinkEvent | { readonly kind: 'replica_error'; readonly error: string }) => void;
}

/** The bucket's name for a subject prefix: bucket names allow letters, digits, "_" and "-". */
export function bucketName(prefix: string): string {
  return `${prefix.replace(/\./g, '_')}_operator`;
}

/** The bucket key of an override target (its JSON, base64url: KV keys allow "-", "_", "=", "." and alphanumerics). */
export function overrideKvKey(target: OverrideTarget): string {
  const t = target.scope === 'domain' ? { scope: 'domain', service: target.service, address: target.address }
    : target.scope === 'server' ? { scope: 'server', address: target.address } : { scope: 'region', region: target.region };
  return `override.${Buffer.from(JSON.stringify(t)).toString('base64url')}`;
}

/** The target of a bucket key, or null for a key this version does not know (never applied). */
function targetOfKey(key: string): OverrideTarget | null {
  if (!key.startsWith('override.')) return null;
  try {
    const t = JSON.parse(Buffer.from(key.slice('override.'.length), 'base64url').toString('utf8')) as Record<string, unknown>;
    if (t.scope === 'domain' && typeof t.service === 'string' && typeof t.address === 'string') return { scope: 'domain', service: t.service, address: t.address };
    if (t.scope === 'server' && typeof t.address === 'string') return { scope: 'server', address: t.address };
    if (t.scope === 'region' && typeof t.region === 'string') return { scope: 'region', region: t.region };
  } catch {
    // not ours
  }
  return null;
}

/** Checks a bucket value's shape before anything applies it (anyone with write access to the bucket could put bytes there). */
function parseOverride(bytes: Uint8Array): StoredOverride | null {
  try {
    const o = JSON.parse(Buffer.from(bytes).toString('utf8')) as Record<string, unknown>;
    if (typeof o.healthy !== 'boolean' || typeof o.reason !== 'string' || typeof o.source !== 'string' || typeof o.service !== 'string' || typeof o.address !== 'string') return null;
    if (typeof o.createdAtMs !== 'number' || !(o.expiresAtMs === null || typeof o.expiresAtMs === 'number')) return null;
    return o as unknown as StoredOverride;
  } catch {
    return null;
  }
}

/** The overwatch's link to the operator-state bucket. */
export class OperatorReplica {
  readonly #link: BusLink;
  readonly #bucket: string;
  readonly #kv: Promise<KV>;
  readonly #onEvent: NonNullable<OperatorReplicaOptions['onEvent']>;
  #closed = false;
  #stopWatch: (() => void) | null = null;

  constructor(options: OperatorReplicaOptions) {
    this.#bucket = bucketName(options.bus.subjectPrefix);
    this.#onEvent = options.onEvent ?? (() => {});
    this.#link = new BusLink(connectionOptions(options.bus, 'overwatch.bus', `${options.name} (operator state)`), (e) => this.#onEvent(e));
    this.#kv = this.#link.ready.then((nc) => new Kvm(nc).create(this.#bucket, { history: 1 }));
    void this.#kv.then(async (kv) => {
      if (this.#closed) return;
      const watch = await kv.watch({ key: 'override.>' });
      this.#stopWatch = () => watch.stop();
      for await (const e of watch) {
        const target = targetOfKey(e.key);
        if (target === null) continue;
        if (e.operation === 'PUT') {
          const override = parseOverride(e.value);
          if (override === null) {
            this.#onEvent({ kind: 'replica_error', error: `bucket ${this.#bucket}: key ${e.key} holds no valid override; ignored` });
            continue;
          }
          options.onOverride({ target, override });
        } else {
          options.onOverride({ target, override: null });
        }
      }
    }).catch((err: unknown) => {
      if (!this.#closed) this.#onEvent({ kind: 'replica_error', error: `bucket ${this.#bucket}: ${err instanceof Error ? err.message : String(err)}` });
    });
  }

  /** Resolves once the bucket is open (tests). */
  async ready(): Promise<void> {
    await this.#kv;
  }

  /** Puts this overwatch's write in the bucket; rejects when NATS is away (the write holds locally). */
  async putOverride(target: OverrideTarget, override: StoredOverride): Promise<void> {
    const kv = await this.#ready();
    await kv.put(overrideKvKey(target), JSON.stringify(override));
  }

  /** Deletes an override from the bucket; rejects when NATS is away. */
  async deleteOverride(target: OverrideTarget): Promise<void> {
    const kv = await this.#ready();
    await kv.delete(overrideKvKey(target));
  }

  async #ready(): Promise<KV> {
    if (this.#link.connection === null) throw new Error('not connected to NATS');
    return this.#kv;
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#stopWatch?.();
    await this.#link.close();
  }
}
