// Bench only. Micro: finding the question name in the snapshot's hash table
// (SnapshotView.findNode), on a 2-name snapshot and on the 10 000-name one,
// and the zone walk handleQuery does on a miss: strip one label at a time
// until a name we hold (NXDOMAIN) or none (REFUSED). Expected: no allocation.

import { nameToWire } from '../src/dns/names.ts';
import type { SnapshotView } from '../src/snapshot/reader.ts';
import { createFixture } from './lib/fixture.ts';
import type { AddCase } from './lib/micro-suite.ts';
import { MANY_NAMES, configFor, manyName, seededRandom } from './lib/scenarios.ts';

/** Lower-case wire names packed back to back, with their offsets and lengths. */
interface PackedNames {
  readonly bytes: Uint8Array;
  readonly off: Int32Array;
  readonly len: Int32Array;
}

function pack(names: readonly string[]): PackedNames {
  const wires = names.map(nameToWire);
  const bytes = new Uint8Array(wires.reduce((n, w) => n + w.length, 0));
  const off = new Int32Array(wires.length);
  const len = new Int32Array(wires.length);
  let o = 0;
  for (let i = 0; i < wires.length; i++) {
    bytes.set(wires[i], o);
    off[i] = o;
    len[i] = wires[i].length;
    o += wires[i].length;
  }
  return { bytes, off, len };
}

/** The miss path of handleQuery's answer(): strip labels until a node is found; returns it or -1. */
function walk(view: SnapshotView, name: Uint8Array, nameLen: number): number {
  let node = view.findNode(name, 0, nameLen);
  if (node >= 0) return node;
  let off = 0;
  while (name[off] !== 0) {
    off += name[off] + 1;
    node = view.findNode(name, off, nameLen - off);
    if (node >= 0) break;
  }
  return node;
}

export default function register(add: AddCase): void {
  const small = createFixture(configFor('a-rr-3')).view;
  const big = createFixture(configFor('names-10k')).view;
  const app = nameToWire('app.bench.test');

  add('lookup', 'hit, 2-name snapshot', () => small.findNode(app, 0, app.length));

  // 1 024 distinct names in a random order, so the probe touches cold buckets as real traffic would.
  const rnd = seededRandom(1);
  const hits = pack(Array.from({ length: 1024 }, () => manyName(Math.floor(rnd() * MANY_NAMES))));
  let i = 0;
  add('lookup', 'hit, 10 000-name snapshot (1 024 of them in turn)', () => {
    i = (i + 1) & 1023;
    return big.findNode(hits.bytes, hits.off[i], hits.len[i]);
  });
  // Every name once per round, in a fixed shuffled order: the table no longer fits the CPU caches.
  const all = pack(Array.from({ length: MANY_NAMES }, (_, k) => manyName(k)).sort(() => rnd() - 0.5));
  let j = 0;
  add('lookup', 'hit, 10 000-name snapshot (all, shuffled)', () => {
    j = j + 1 === MANY_NAMES ? 0 : j + 1;
    return big.findNode(all.bytes, all.off[j], all.len[j]);
  });

  const missing = nameToWire('x.missing.bench.test');
  add('lookup', 'miss + zone walk → NXDOMAIN (3 probes, 10 000 names)', () => walk(big, missing, missing.length));

  const outside = nameToWire('www.example.com');
  add('lookup', 'outside every zone → REFUSED (3 probes, 10 000 names)', () => walk(big, outside, outside.length));
}
