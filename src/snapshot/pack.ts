// Main thread, cold path. Step 3 of 3 of compiling a snapshot
// (model → encode → pack, ./compile.ts): lays the modelled rows and their
// encoded bytes out in one new SharedArrayBuffer, in the binary format of
// ./layout.ts (drawn in docs/architecture.md): header, the node table (the
// names' hash table), the zone, record, member and group tables, the geo
// table, the static RRsets, then the blob of bytes.

import { QTYPE } from '../dns/constants.ts';
import { hashWire } from '../dns/names.ts';
import { OpenGslbError } from '../lib/errors.ts';
import type { EncodedSnapshot } from './encode.ts';
import * as L from './layout.ts';
import type { SnapshotModel } from './model.ts';

/** Appends bytes to a growing blob and returns each piece's offset; 4-byte alignment is not needed for bytes. */
class Blob {
  readonly parts: Uint8Array[] = [];
  length = 0;
  add(bytes: Uint8Array): number {
    const off = this.length;
    this.parts.push(bytes);
    this.length += bytes.length;
    return off;
  }
}

/** Rounds a byte offset up to the next multiple of 64 (a cache line). */
function align64(off: number): number {
  return (off + 63) & ~63;
}

/**
 * Packs `model` with its `encoded` bytes into a new snapshot buffer.
 * Throws OpenGslbError(OPENGSLB_ERR_SNAPSHOT_COMPILE) when the image would
 * exceed 2 GiB, the largest a Uint32 offset of ours may address.
 */
export function packSnapshot(model: SnapshotModel, encoded: EncodedSnapshot, generation: number): SharedArrayBuffer {
  const { nodes, zones, records } = model;
  const blob = new Blob();
  // Each name is followed by the answer fragments of its records, so the node
  // row alone says where a name's fragments are (NODE_NAME_OFF +
  // NODE_NAME_LEN): the query path starts loading them together with the
  // record row instead of after it (warmAddresses in workers/handle-query.ts;
  // names-10k: docs/benchmarks.md).
  const recordsOfNode: number[][] = nodes.map(() => []);
  for (let r = 0; r < records.length; r++) recordsOfNode[records[r].node]?.push(r);
  const fragOffOf: number[][] = new Array<number[]>(records.length);
  const nodeNameOff = encoded.nodeNames.map((wire, i) => {
    const off = blob.add(wire);
    for (const r of recordsOfNode[i]) fragOffOf[r] = encoded.fragments[r].map((f) => blob.add(f));
    return off;
  });
  const soaOff = encoded.soa.map((body) => blob.add(body));
  const nsOff = encoded.ns.map((ns) => blob.add(ns.bytes));
  const glueOff = encoded.glue.map((glue) => blob.add(glue.bytes));
  const dnskeyOff = encoded.dnskey.map((d) => blob.add(d.bytes));
  const nsecOff = encoded.nsecBitmaps.map((b) => blob.add(b));
  const rrsetOff = encoded.rrsets.map((r) => ({ bodies: blob.add(r.bodies), glue: blob.add(r.glue) }));
  const idTxtOff = blob.add(encoded.idTxt);
  const versionTxtOff = blob.add(encoded.versionTxt);
  let memberCount = 0;
  const fragOff: number[] = [];
  for (let r = 0; r < encoded.fragments.length; r++) {
    fragOffOf[r] ??= encoded.fragments[r].map((f) => blob.add(f));
    fragOff.push(...fragOffOf[r]);
    memberCount += encoded.fragments[r].length;
  }

  // The node table is the hash table: the model's node i lives in row
  // slotOf[i], its home row (hash & mask) or the first empty one after it.
  let slots = 16;
  while (slots < nodes.length * 2) slots *= 2;
  const mask = slots - 1;
  const hashes = encoded.nodeNames.map((wire) => hashWire(wire, 0, wire.length));
  const taken = new Uint8Array(slots);
  const slotOf = hashes.map((hash) => {
    let row = hash & mask;
    while (taken[row] !== 0) row = (row + 1) & mask;
    taken[row] = 1;
    return row;
  });

  // Every table starts on a 64-byte cache line, so each 64-byte node row is
  // one line, no 16-byte member straddles two lines and a 96-byte record's
  // first eight words (what a round-robin answer reads) share one.
  const nodesOff = align64(L.HEADER_BYTES);
  const zonesOff = align64(nodesOff + slots * L.NODE_WORDS * 4);
  const recordsOff = align64(zonesOff + zones.length * L.ZONE_WORDS * 4);
  let groupCount = 0;
  for (const r of records) groupCount += r.groups.length;
  const geoWords = encoded.geoTable === null ? 0 : encoded.geoTable.length;
  const membersOff = align64(recordsOff + records.length * L.RECORD_WORDS * 4);
  const groupsOff = align64(membersOff + memberCount * L.MEMBER_WORDS * 4);
  const geoOff = align64(groupsOff + groupCount * L.GROUP_WORDS * 4);
  const rrsetsOff = align64(geoOff + geoWords * 4);
  const blobOff = align64(rrsetsOff + model.rrsets.length * L.RRSET_WORDS * 4);
  const totalBytes = (blobOff + blob.length + 3) & ~3;
  if (totalBytes > 0x7fffffff) throw new OpenGslbError('OPENGSLB_ERR_SNAPSHOT_COMPILE', `snapshot would be ${totalBytes} bytes, more than 2 GiB`);

  const buffer = new SharedArrayBuffer(totalBytes);
  const u32 = new Uint32Array(buffer);
  const u8 = new Uint8Array(buffer);
  u32[L.HDR_MAGIC] = L.SNAPSHOT_MAGIC;
  u32[L.HDR_VERSION] = L.SNAPSHOT_VERSION;
  u32[L.HDR_TOTAL_BYTES] = totalBytes;
  u32[L.HDR_GENERATION] = generation;
  u32[L.HDR_NODE_SLOTS] = slots;
  u32[L.HDR_NODE_COUNT] = nodes.length;
  u32[L.HDR_NODES_OFF] = nodesOff;
  u32[L.HDR_ZONE_COUNT] = zones.length;
  u32[L.HDR_ZONES_OFF] = zonesOff;
  u32[L.HDR_RECORD_COUNT] = records.length;
  u32[L.HDR_RECORDS_OFF] = recordsOff;
  u32[L.HDR_MEMBER_COUNT] = memberCount;
  u32[L.HDR_MEMBERS_OFF] = membersOff;
  u32[L.HDR_BLOB_OFF] = blobOff;
  u32[L.HDR_BLOB_LEN] = blob.length;
  u32[L.HDR_GROUP_COUNT] = groupCount;
  u32[L.HDR_GROUPS_OFF] = groupsOff;
  u32[L.HDR_GEO_OFF] = encoded.geoTable === null ? 0 : geoOff;
  u32[L.HDR_GEO_WORDS] = geoWords;
  u32[L.HDR_FLAGS] = model.ecsEnabled ? L.HDR_FLAG_ECS : 0;
  u32[L.HDR_RRSET_COUNT] = model.rrsets.length;
  u32[L.HDR_RRSETS_OFF] = rrsetsOff;
  u32[L.HDR_ID_TXT_OFF] = blobOff + idTxtOff;
  u32[L.HDR_ID_TXT_LEN] = encoded.idTxt.length;
  u32[L.HDR_VERSION_TXT_OFF] = blobOff + versionTxtOff;
  u32[L.HDR_VERSION_TXT_LEN] = encoded.versionTxt.length;
  for (let r = 0; r < model.rrsets.length; r++) {
    const row = model.rrsets[r];
    const base = (rrsetsOff >> 2) + r * L.RRSET_WORDS;
    u32[base + L.RS_TYPE] = row.type;
    u32[base + L.RS_TTL] = row.ttl;
    u32[base + L.RS_COUNT] = row.rdatas.length;
    u32[base + L.RS_OFF] = blobOff + rrsetOff[r].bodies;
    u32[base + L.RS_LEN] = encoded.rrsets[r].bodies.length;
    u32[base + L.RS_GLUE_OFF] = blobOff + rrsetOff[r].glue;
    u32[base + L.RS_GLUE_COUNT] = row.glue.length;
    u32[base + L.RS_GLUE_LEN] = encoded.rrsets[r].glue.length;
    u32[base + L.RS_CHASE] = row.chase ? 1 : 0;
  }
  if (encoded.geoTable !== null) u32.set(encoded.geoTable, geoOff >> 2);

  let off = blobOff;
  for (const part of blob.parts) {
    u8.set(part, off);
    off += part.length;
  }

  for (let i = 0; i < nodes.length; i++) {
    const n = nodes[i];
    const wire = encoded.nodeNames[i];
    const base = (nodesOff >> 2) + slotOf[i] * L.NODE_WORDS;
    u32[base + L.NODE_NAME_OFF] = blobOff + nodeNameOff[i];
    u32[base + L.NODE_NAME_LEN] = wire.length;
    u32[base + L.NODE_HASH] = hashes[i];
    u32[base + L.NODE_ZONE] = n.zone;
    u32[base + L.NODE_FLAGS] = n.flags;
    u32[base + L.NODE_REC_A] = n.recA;
    u32[base + L.NODE_REC_AAAA] = n.recAAAA;
    u32[base + L.NODE_NSEC_OFF] = blobOff + nsecOff[i];
    u32[base + L.NODE_RRSET_START] = n.rrsetStart;
    u32[base + L.NODE_RRSET_COUNT] = n.rrsetCount;
    u32[base + L.NODE_REC_CNAME] = n.recCname;
    u8.set(wire.subarray(0, L.NODE_NAME_INLINE_BYTES), (base + L.NODE_NAME_INLINE) << 2);
  }
  for (let z = 0; z < zones.length; z++) {
    const base = (zonesOff >> 2) + z * L.ZONE_WORDS;
    const zone = zones[z];
    const apex = model.nodeByName.get(zone.name) as number;
    u32[base + L.ZONE_NODE] = slotOf[apex];
    u32[base + L.ZONE_APEX_LEN] = encoded.nodeNames[apex].length;
    u32[base + L.ZONE_SOA_OFF] = blobOff + soaOff[z];
    u32[base + L.ZONE_SOA_LEN] = encoded.soa[z].length;
    u32[base + L.ZONE_NEG_TTL] = Math.min(zone.soa.ttlSec, zone.soa.minimumSec);
    u32[base + L.ZONE_NS_OFF] = blobOff + nsOff[z];
    u32[base + L.ZONE_NS_COUNT] = encoded.ns[z].count;
    u32[base + L.ZONE_NS_LEN] = encoded.ns[z].bytes.length;
    u32[base + L.ZONE_GLUE_OFF] = blobOff + glueOff[z];
    u32[base + L.ZONE_GLUE_COUNT] = encoded.glue[z].count;
    u32[base + L.ZONE_GLUE_LEN] = encoded.glue[z].bytes.length;
    u32[base + L.ZONE_DNSKEY_OFF] = blobOff + dnskeyOff[z];
    u32[base + L.ZONE_DNSKEY_COUNT] = encoded.dnskey[z].count;
    u32[base + L.ZONE_DNSKEY_LEN] = encoded.dnskey[z].bytes.length;
    u32[base + L.ZONE_SOA_TTL] = zone.soa.ttlSec;
  }
  let m = 0;
  let g = 0;
  for (let r = 0; r < records.length; r++) {
    const rec = records[r];
    const base = (recordsOff >> 2) + r * L.RECORD_WORDS;
    u32[base + L.REC_POLICY] = rec.policy;
    u32[base + L.REC_MEMBER_START] = m;
    u32[base + L.REC_MEMBER_COUNT] = rec.members.length;
    u32[base + L.REC_MAX_ANSWERS] = Math.max(1, Math.min(rec.maxAnswers, L.MAX_ANSWERS_LIMIT));
    u32[base + L.REC_TTL] = rec.ttl;
    // The record's fragments were added to the blob one after another (above).
    u32[base + L.REC_FRAG_BASE] = rec.members.length + rec.fallback.length === 0 ? 0 : blobOff + fragOff[m];
    u32[base + L.REC_QTYPE] = rec.qtype;
    u32[base + L.REC_FRAG_LEN] = rec.qtype === QTYPE.AAAA ? L.FRAG_LEN_AAAA : rec.qtype === QTYPE.CNAME ? 0 : L.FRAG_LEN_A;
    u32[base + L.REC_CHASE] = rec.chase ? 1 : 0;
    u32[base + L.REC_NODE] = slotOf[rec.node];
    u32[base + L.REC_ALL_DOWN] = rec.allDown;
    u32[base + L.REC_FALLBACK_START] = m + rec.members.length;
    u32[base + L.REC_FALLBACK_COUNT] = rec.fallback.length;
    u32[base + L.REC_LAST_UP_WINDOW] = rec.lastUpWindowSec;
    u32[base + L.REC_MIN_SAMPLES] = rec.minSamples;
    u32[base + L.REC_MAX_LATENCY_US] = rec.maxLatencyUs;
    u32[base + L.REC_TIE_MARGIN_US] = rec.tieMarginUs;
    u32[base + L.REC_STAT_ID] = rec.statId;
    u32[base + L.REC_STICKY_V4_PREFIX] = rec.stickyV4Prefix;
    u32[base + L.REC_STICKY_V6_PREFIX] = rec.stickyV6Prefix;
    u32[base + L.REC_GROUP_START] = g;
    u32[base + L.REC_GROUP_COUNT] = rec.groups.length;
    u32[base + L.REC_GEO_STAT_NOT_SERVED] = rec.statNotServed;
    u32[base + L.REC_GEO_STAT_UNDECIDED] = rec.statUndecided;
    for (const group of rec.groups) {
      const gb = (groupsOff >> 2) + g * L.GROUP_WORDS;
      u32[gb + L.GRP_REGION] = group.region;
      u32[gb + L.GRP_MEMBER_END] = group.memberEnd;
      u32[gb + L.GRP_STAT_CUSTOM] = group.statCustom;
      u32[gb + L.GRP_STAT_GEOIP] = group.statGeoip;
      u32[gb + L.GRP_STAT_DEFAULT] = group.statDefault;
      u32[gb + L.GRP_STAT_FALLBACK] = group.statRegionDown;
      g++;
    }
    const rows = rec.members.length + rec.fallback.length;
    for (let i = 0; i < rows; i++) {
      const row = i < rec.members.length ? rec.members[i] : rec.fallback[i - rec.members.length];
      const mb = (membersOff >> 2) + m * L.MEMBER_WORDS;
      u32[mb + L.MEM_HEALTH_SLOT] = row.healthSlot;
      u32[mb + L.MEM_WEIGHT] = row.weight;
      u32[mb + L.MEM_FRAG_OFF] = blobOff + fragOff[m];
      u32[mb + L.MEM_SERVER] = row.serverSlot;
      m++;
    }
  }
  return buffer;
}
