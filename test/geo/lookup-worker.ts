// Test worker: attaches a GeoIpReader to the SharedArrayBuffer it is given and
// answers the lookups of its address list (family, packed result), then says
// whether the buffer it read is the shared one (not a copy).

import { parentPort, workerData } from 'node:worker_threads';
import { GeoIpReader } from '../../src/geo/lookup.ts';

const { sab, addresses } = workerData as { sab: SharedArrayBuffer; addresses: Uint8Array[] };
const reader = new GeoIpReader(sab);
const results = addresses.map((a) => reader.find(a, 0, a.length));
// A byte the main thread changes after we attached: visible here only if the memory is shared.
const probe = new Uint8Array(sab, sab.byteLength - 1, 1);
parentPort?.once('message', () => parentPort?.postMessage({ lastByte: probe[0] }));
parentPort?.postMessage({ results, isShared: sab instanceof SharedArrayBuffer });
