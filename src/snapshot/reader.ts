// Worker (and tests), hot path. Zero-copy views over a published snapshot:
// attach once (checks magic, version and every table's bounds), then look
// names up by hash and byte comparison in the node table (the hash table,
// ./layout.ts). No allocation after attach.

import { hashWire } from '../dns/names.ts';
import { checkGeoTable } from '../geo/cidr-table.ts';
import * as L from './layout.ts';

/** A snapshot attached for reading. Fields are plain numbers so V8 keeps one hidden class. */
export class SnapshotView {
  readonly buffer: SharedArrayBuffer;
  readonly u32: Uint32Array;
  readonly u8: Uint8Array;
  readonly generation: number;
  /** HDR_NODE_SLOTS − 1: a name's home row is hash & slotMask. */
  readonly slotMask: number;
  readonly nodesWord: number;
  readonly zonesWord: number;
  readonly recordsWord: number;
  readonly membersWord: number;
  readonly groupsWord: number;
  readonly rrsetsWord: number;
  /** Word index of the geo table (src/geo/cidr-table.ts), 0 when the snapshot has none. */
  readonly geoWord: number;
  /** Route on ECS addresses (HDR_FLAG_ECS). */
  readonly ecsEnabled: boolean;
  /** Names held (rows in use). */
  readonly nodeCount: number;
  /** Rows of the node table; a node index is below this. Empty rows have NODE_NAME_LEN 0 (see hasNode). */
  readonly nodeSlots: number;
  readonly zoneCount: number;
  readonly recordCount: number;
  readonly memberCount: number;

  /**
   * Attaches to a snapshot buffer. Throws Error saying which check failed
   * when the magic, version or any table bound is wrong: a worker that cannot
   * attach must exit rather than serve from an unknown state.
   */
  constructor(buffer: SharedArrayBuffer) {
    if (buffer.byteLength < L.HEADER_BYTES || buffer.byteLength % 4 !== 0) throw new Error(`snapshot: ${buffer.byteLength} bytes is not a valid snapshot size`);
    const u32 = new Uint32Array(buffer);
    if (u32[L.HDR_MAGIC] !== L.SNAPSHOT_MAGIC) throw new Error('snapshot: bad magic');
    if (u32[L.HDR_VERSION] !== L.SNAPSHOT_VERSION) throw new Error(`snapshot: version ${u32[L.HDR_VERSION]}, expected ${L.SNAPSHOT_VERSION}`);
    if (u32[L.HDR_TOTAL_BYTES] !== buffer.byteLength) throw new Error('snapshot: length in header does not match buffer');
    const slots = u32[L.HDR_NODE_SLOTS];
    if (slots === 0 || (slots & (slots - 1)) !== 0) throw new Error('snapshot: node slot count is not a power of two');
    // Load factor ≤ 0.5: an empty row ends every probe.
    if (u32[L.HDR_NODE_COUNT] * 2 > slots) throw new Error('snapshot: more nodes than half the node slots');
    const total = buffer.byteLength;
    const within = (off: number, count: number, words: number, what: string): void => {
      if (off % 4 !== 0 || off < L.HEADER_BYTES || off + count * words * 4 > total) throw new Error(`snapshot: ${what} table out of bounds`);
    };
    within(u32[L.HDR_NODES_OFF], slots, L.NODE_WORDS, 'node');
    within(u32[L.HDR_ZONES_OFF], u32[L.HDR_ZONE_COUNT], L.ZONE_WORDS, 'zone');
    within(u32[L.HDR_RECORDS_OFF], u32[L.HDR_RECORD_COUNT], L.RECORD_WORDS, 'record');
    within(u32[L.HDR_MEMBERS_OFF], u32[L.HDR_MEMBER_COUNT], L.MEMBER_WORDS, 'member');
    within(u32[L.HDR_GROUPS_OFF], u32[L.HDR_GROUP_COUNT], L.GROUP_WORDS, 'group');
    within(u32[L.HDR_RRSETS_OFF], u32[L.HDR_RRSET_COUNT], L.RRSET_WORDS, 'rrset');
    if (u32[L.HDR_GEO_OFF] !== 0) {
      within(u32[L.HDR_GEO_OFF], u32[L.HDR_GEO_WORDS], 1, 'geo');
      const problem = checkGeoTable(u32, u32[L.HDR_GEO_OFF] >> 2);
      if (problem !== null) throw new Error(`snapshot: geo table: ${problem}`);
    }
    if (u32[L.HDR_BLOB_OFF] + u32[L.HDR_BLOB_LEN] > total) throw new Error('snapshot: blob out of bounds');
    this.buffer = buffer;
    this.u32 = u32;
    this.u8 = new Uint8Array(buffer);
    this.generation = u32[L.HDR_GENERATION];
    this.slotMask = slots - 1;
    this.nodesWord = u32[L.HDR_NODES_OFF] >> 2;
    this.zonesWord = u32[L.HDR_ZONES_OFF] >> 2;
    this.recordsWord = u32[L.HDR_RECORDS_OFF] >> 2;
    this.membersWord = u32[L.HDR_MEMBERS_OFF] >> 2;
    this.groupsWord = u32[L.HDR_GROUPS_OFF] >> 2;
    this.rrsetsWord = u32[L.HDR_RRSETS_OFF] >> 2;
    this.geoWord = u32[L.HDR_GEO_OFF] >> 2;
    this.ecsEnabled = (u32[L.HDR_FLAGS] & L.HDR_FLAG_ECS) !== 0;
    this.nodeCount = u32[L.HDR_NODE_COUNT];
    this.nodeSlots = slots;
    this.zoneCount = u32[L.HDR_ZONE_COUNT];
    this.recordCount = u32[L.HDR_RECORD_COUNT];
    this.memberCount = u32[L.HDR_MEMBER_COUNT];
  }

  /**
   * Finds the node whose lower-case wire name equals name[off, off+len).
   * Returns the node index, or -1. Allocation-free. A name of up to
   * NODE_NAME_INLINE_BYTES is compared in its row alone.
   */
  findNode(name: Uint8Array, off: number, len: number): number {
    return this.findNodeHashed(name, off, len, hashWire(name, off, len) | 0);
  }

  /**
   * findNode() for a caller that has hashWire(name, off, len) already (the
   * batched UDP path hashes each question name once, in its prefetch), as an
   * int32 (`| 0`: never boxed when passed). `hash32` must be exactly that:
   * with another value the name is not found (a row matches only on both its
   * stored hash and its bytes).
   */
  findNodeHashed(name: Uint8Array, off: number, len: number, hash32: number): number {
    const u32 = this.u32;
    const u8 = this.u8;
    const hash = hash32 >>> 0;
    const inline = len < L.NODE_NAME_INLINE_BYTES ? len : L.NODE_NAME_INLINE_BYTES;
    let row = hash & this.slotMask;
    // Load factor ≤ 0.5 guarantees an empty row, so the probe ends.
    for (;;) {
      const base = this.nodesWord + row * L.NODE_WORDS;
      const rowLen = u32[base + L.NODE_NAME_LEN];
      if (rowLen === 0) return -1;
      if (rowLen === len && u32[base + L.NODE_HASH] === hash) {
        const at = (base + L.NODE_NAME_INLINE) << 2;
        let i = 0;
        while (i < inline && u8[at + i] === name[off + i]) i++;
        if (i === inline) {
          const nameOff = u32[base + L.NODE_NAME_OFF];
          while (i < len && u8[nameOff + i] === name[off + i]) i++;
          if (i === len) return row;
        }
      }
      row = (row + 1) & this.slotMask;
    }
  }

  /** Whether row `n` of the node table holds a node (the table has empty rows). */
  hasNode(n: number): boolean {
    return this.u32[this.nodesWord + n * L.NODE_WORDS + L.NODE_NAME_LEN] !== 0;
  }

  /** Returns the word index of node `n`'s fields (add NODE_* to it). */
  nodeBase(n: number): number {
    return this.nodesWord + n * L.NODE_WORDS;
  }

  /** Returns the word index of zone `z`'s fields (add ZONE_* to it). */
  zoneBase(z: number): number {
    return this.zonesWord + z * L.ZONE_WORDS;
  }

  /** Returns the word index of record `r`'s fields (add REC_* to it). */
  recordBase(r: number): number {
    return this.recordsWord + r * L.RECORD_WORDS;
  }

  /** Returns the word index of member `m`'s fields (add MEM_* to it). */
  memberBase(m: number): number {
    return this.membersWord + m * L.MEMBER_WORDS;
  }

  /** Returns the word index of static RRset `r`'s fields (add RS_* to it). */
  rrsetBase(r: number): number {
    return this.rrsetsWord + r * L.RRSET_WORDS;
  }

  /** Returns the static RRset of `type` at node `node`, or -1. */
  findRrset(node: number, type: number): number {
    const u32 = this.u32;
    const nb = this.nodesWord + node * L.NODE_WORDS;
    const start = u32[nb + L.NODE_RRSET_START];
    const end = start + u32[nb + L.NODE_RRSET_COUNT];
    for (let r = start; r < end; r++) if (u32[this.rrsetsWord + r * L.RRSET_WORDS + L.RS_TYPE] === type) return r;
    return -1;
  }

  /** Returns the word index of group `g`'s fields (add GRP_* to it). */
  groupBase(g: number): number {
    return this.groupsWord + g * L.GROUP_WORDS;
  }
}
