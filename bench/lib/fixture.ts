// Bench only, cold. In-process engine fixtures for the micro benchmarks: a
// config text compiled into a real snapshot exactly as the overwatch does
// (parse → validate → compile), live slots set as health checks would set
// them, and the worker's own scratch state. No sockets, no threads.

import { generateKeyPairSync } from 'node:crypto';
import { parseConfigText } from '../../src/config/load.ts';
import { CSK_FLAGS, dnskeyRdata, keyTagOf, publicKeyField } from '../../src/dnssec/keys.ts';
import { createSignerKey, DNSSEC_ALGORITHM } from '../../src/dnssec/sign.ts';
import { nameToWire } from '../../src/dns/names.ts';
import { createCounters } from '../../src/metrics/counters-layout.ts';
import { Registry } from '../../src/registry/registry.ts';
import { compileSnapshot } from '../../src/snapshot/compile.ts';
import * as L from '../../src/snapshot/layout.ts';
import { HEALTH_HEALTHY, HEALTH_UNHEALTHY, createLiveSlots, writeHealth, writeLastUp, writeLatency } from '../../src/snapshot/live-slots.ts';
import type { SnapshotView } from '../../src/snapshot/reader.ts';
import { WorkerScratch } from '../../workers/scratch.ts';
import { encodeQuery, type EdnsSpec } from './query-wire.ts';

export interface FixtureOptions {
  /** Every server healthy (default) or every server down (when_all_down paths). */
  readonly health?: 'healthy' | 'down';
  /** Latency EMA (µs) per slot, with `samples` samples each; unset = no samples. */
  readonly latencyMicros?: (slot: number) => number;
  readonly samples?: number;
  /** Sign every zone with a new key of this algorithm (DO queries get RRSIGs); default: no zone signed. */
  readonly signed?: 'ECDSAP256SHA256' | 'ED25519';
}

/** A compiled snapshot with its live slots and one worker's scratch state. */
export interface EngineFixture {
  readonly scratch: WorkerScratch;
  readonly view: SnapshotView;
  readonly live: Int32Array;
  readonly slotCount: number;
}

/**
 * Compiles `configText` and attaches a WorkerScratch to it. Throws the
 * config's ConfigError when the text is invalid.
 */
export function createFixture(configText: string, opts: FixtureOptions = {}): EngineFixture {
  const config = parseConfigText(configText, 'bench.yaml');
  const registry = new Registry();
  registry.applyConfig(config);
  const zones = registry.view().zones.map((z) => z.name);
  // One key for every zone, made here (synchronously: a fixture is set up before the timing starts).
  const alg = opts.signed === 'ED25519' ? DNSSEC_ALGORITHM.ED25519 : DNSSEC_ALGORITHM.ECDSAP256SHA256;
  const privateKey = opts.signed === undefined ? null : alg === DNSSEC_ALGORITHM.ED25519 ? generateKeyPairSync('ed25519').privateKey : generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
  const dnskey = privateKey === null ? null : dnskeyRdata(CSK_FLAGS, alg, publicKeyField(privateKey, alg));
  const snap = compileSnapshot(registry.view(), { generation: 1, serial: 1, ...(dnskey === null ? {} : { dnskeys: new Map(zones.map((z) => [z, [dnskey]])) }) });
  const slotCount = Math.max(1, registry.slotHighWater);
  const live = createLiveSlots(slotCount);
  const nowSec = Math.floor(Date.now() / 1000);
  for (let s = 0; s < slotCount; s++) {
    writeHealth(live, s, opts.health === 'down' ? HEALTH_UNHEALTHY : HEALTH_HEALTHY);
    // For last_healthy: slot 0 was up most recently, the others a minute earlier.
    writeLastUp(live, s, s === 0 ? nowSec : nowSec - 60);
    if (opts.latencyMicros !== undefined) writeLatency(live, s, opts.latencyMicros(s), opts.samples ?? 10);
  }
  const signers = privateKey === null || dnskey === null
    ? []
    : zones.map((z) => {
        const key = createSignerKey(nameToWire(z), keyTagOf(dnskey), alg, privateKey);
        return { data: [key], dnskey: [key] };
      });
  const scratch = new WorkerScratch(snap.buffer, live, createCounters(1), 0, { zones: signers, validitySec: 7 * 86400 });
  return { scratch, view: scratch.view, live, slotCount };
}

/** Returns the record index of `name`'s A (or AAAA) RRset; throws when the name has none. */
export function recordOf(view: SnapshotView, name: string, family: 4 | 6 = 4): number {
  const wire = nameToWire(name);
  const node = view.findNode(wire, 0, wire.length);
  if (node < 0) throw new Error(`${name} is not in the snapshot`);
  const rec = view.u32[view.nodeBase(node) + (family === 4 ? L.NODE_REC_A : L.NODE_REC_AAAA)];
  if (rec === 0) throw new Error(`${name} has no ${family === 4 ? 'A' : 'AAAA'} records`);
  return rec - 1;
}

/** Encodes a query as the Buffer a UDP socket would hand the worker. */
export function queryBuffer(name: string, qtype: number, edns?: EdnsSpec): Buffer {
  return Buffer.from(encodeQuery(0x1234, { name, qtype }, edns));
}

/** A response buffer as large as the transports allocate (a TCP message can reach 64 KiB). */
export function responseBuffer(): Buffer {
  return Buffer.allocUnsafe(65_535);
}
