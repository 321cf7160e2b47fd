// Main thread, cold path. Compiles a registry view into the immutable binary
// snapshot the DNS workers read (layout in ./layout.ts, drawn in
// docs/architecture.md), in three steps, each its own module:
//
//   RegistryView ──modelSnapshot()──► rows (./model.ts)
//                ──encodeSnapshot()─► wire bytes (./encode.ts)
//                ──packSnapshot()───► SharedArrayBuffer (./pack.ts)
//
// Everything a query needs is decided here: owner names are hashed, answer RRs
// are encoded with their TTL, SOA/NS/glue are encoded, and empty
// non-terminals are materialised so a worker never walks a tree. The compiler
// reads the registry's view, never the config, and allocates nothing in the
// live slots: the registry did that when it made the view.

import type { MemberModel, RegistryView } from '../registry/registry.ts';
import { encodeSnapshot } from './encode.ts';
import { modelSnapshot } from './model.ts';
import { packSnapshot } from './pack.ts';

/** What the compiler produced, with counts for logs and the API. */
export interface CompiledSnapshot {
  readonly buffer: SharedArrayBuffer;
  readonly generation: number;
  readonly serial: number;
  readonly stats: { names: number; zones: number; records: number; members: number; bytes: number };
  /** The registry view it was compiled from. */
  readonly view: RegistryView;
  /** Per member-table index: which domain's use of which server it stands for; null for static data (name servers, fallback). */
  readonly members: readonly (MemberModel | null)[];
  /** Per record index: the domain it answers, or null for static name-server data. */
  readonly recordDomains: readonly (string | null)[];
}

export interface CompileOptions {
  /** Monotonic generation number written into the header. */
  readonly generation: number;
  /** SOA serial for zones without an explicit one and not in `serials`. */
  readonly serial: number;
  /** SOA serial by zone apex (src/overwatch/zone-serials.ts derives them from the zone's content). */
  readonly serials?: ReadonlyMap<string, number>;
}

/**
 * Compiles `view` into a new snapshot. Pure. Throws
 * OpenGslbError(OPENGSLB_ERR_SNAPSHOT_COMPILE) only when a limit of the format
 * is exceeded; a view of validated config never does that.
 */
export function compileSnapshot(view: RegistryView, options: CompileOptions): CompiledSnapshot {
  const model = modelSnapshot(view);
  const encoded = encodeSnapshot(model, (zone) => options.serials?.get(zone) ?? options.serial);
  const buffer = packSnapshot(model, encoded, options.generation);
  const members: (MemberModel | null)[] = [];
  for (const r of model.records) {
    for (const m of r.members) members.push(m.member);
    for (const m of r.fallback) members.push(m.member);
  }
  return {
    buffer,
    generation: options.generation,
    serial: options.serial,
    stats: { names: model.nodes.length, zones: model.zones.length, records: model.records.length, members: members.length, bytes: buffer.byteLength },
    view,
    members,
    recordDomains: model.records.map((r) => r.domain),
  };
}
