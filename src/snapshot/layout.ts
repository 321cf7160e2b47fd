// Any thread. The binary layout of a routing snapshot: every offset both the
// compiler (main thread) and the reader (DNS workers) use, named in one place
// (after thread-stream's lib/indexes.js). docs/architecture.md draws it.
//
// A snapshot is one SharedArrayBuffer, immutable once published. Every *_OFF
// field below holds an absolute byte offset from the start of the snapshot
// (pointing into the blob), never an offset relative to the blob. All integers
// are little-endian uint32 read through one Uint32Array view, so every table
// starts on a 4-byte boundary. Byte data (names, precomputed RR fragments) sits
// in the trailing blob and is read through a Uint8Array view.
//
//   ┌─────────────┬──────────────────────┬────────────┬──────────────┬──────────────┬─────────────┬───────────┬───────┐
//   │ header 112 B│ nodes: the hash table│ zones      │ records      │ members      │ groups      │ geo table │ blob  │
//   │ HDR_* words │ NODE_WORDS, 64 B rows│ ZONE_WORDS │ RECORD_WORDS │ MEMBER_WORDS │ GROUP_WORDS │ u32 words │ bytes │
//   └─────────────┴──────────────────────┴────────────┴──────────────┴──────────────┴─────────────┴───────────┴───────┘
//   (and the static RRset table before the blob)

/** "OGSL" read as a little-endian uint32. */
export const SNAPSHOT_MAGIC = 0x4c53474f;
/** Bumped whenever any offset below changes meaning. */
export const SNAPSHOT_VERSION = 9;

// Header: word indexes into the Uint32Array view.
export const HDR_MAGIC = 0;
export const HDR_VERSION = 1;
/** Total bytes of the snapshot (equals the SAB's byteLength). */
export const HDR_TOTAL_BYTES = 2;
/** Generation number, increasing with every snapshot the main thread publishes. */
export const HDR_GENERATION = 3;
/** Rows of the node table, which is the names' hash table: a power of two, at least twice HDR_NODE_COUNT. */
export const HDR_NODE_SLOTS = 4;
/** Unused (was the bucket array's offset before snapshot version 9); 0. */
export const HDR_UNUSED_5 = 5;
/** Names held: the node rows in use. */
export const HDR_NODE_COUNT = 6;
/** Byte offset of the node table (a multiple of 64: each row is one cache line). */
export const HDR_NODES_OFF = 7;
export const HDR_ZONE_COUNT = 8;
export const HDR_ZONES_OFF = 9;
export const HDR_RECORD_COUNT = 10;
export const HDR_RECORDS_OFF = 11;
export const HDR_MEMBER_COUNT = 12;
export const HDR_MEMBERS_OFF = 13;
export const HDR_BLOB_OFF = 14;
export const HDR_BLOB_LEN = 15;
export const HDR_GROUP_COUNT = 16;
/** Byte offset of the group table (region groups of geolocation records). */
export const HDR_GROUPS_OFF = 17;
/** Byte offset of the geo table (src/geo/cidr-table.ts layout), 0 when no domain routes by geolocation. */
export const HDR_GEO_OFF = 18;
/** Length of the geo table in words. */
export const HDR_GEO_WORDS = 19;
/** HDR_FLAG_* bits. */
export const HDR_FLAGS = 20;
export const HDR_RESERVED = 21;
/** Rows in the static RRset table (dns.zones[].records) and its byte offset. */
export const HDR_RRSET_COUNT = 22;
export const HDR_RRSETS_OFF = 23;
/** dns.identity.id as one TXT rdata (blob offset and length; length 0 = unset: id.server / hostname.bind are REFUSED). */
export const HDR_ID_TXT_OFF = 24;
export const HDR_ID_TXT_LEN = 25;
/** dns.identity.version as one TXT rdata (length 0 = unset: version.bind / version.server are REFUSED). */
export const HDR_VERSION_TXT_OFF = 26;
export const HDR_VERSION_TXT_LEN = 27;
export const HEADER_WORDS = 28;
export const HEADER_BYTES = HEADER_WORDS * 4;

/** Route on the EDNS Client Subnet address when a query carries one (overwatch.geolocation.ecs_enabled). */
export const HDR_FLAG_ECS = 1;

// Nodes: one per owner name we know (GSLB names, zone apexes, in-zone name
// server hosts, and the empty non-terminals between an apex and those),
// stored in the hash table itself: open addressing with linear probing over
// HDR_NODE_SLOTS rows, a row NODE_NAME_LEN = 0 being empty. Load factor ≤ 0.5,
// so a miss ends at the first empty row after a short probe. A node index is
// its row. Each row is one 64-byte cache line holding the hash, the fields a
// query reads next and the first NODE_NAME_INLINE_BYTES of the name, so a
// lookup of a name not asked recently misses once (the row) where a bucket
// array, a node row and the name bytes in the blob were three misses, one
// after the other.
export const NODE_NAME_OFF = 0; //   byte offset (in the blob) of the lower-case wire name (all of it; names longer than the inline bytes are compared on from there)
export const NODE_NAME_LEN = 1; //   wire length of the name, including the root byte; 0 = empty row
export const NODE_HASH = 2; //       hashWire() of the name
export const NODE_ZONE = 3; //       index of the zone the name belongs to (the longest apex above it)
export const NODE_FLAGS = 4; //      NODE_FLAG_* bits
export const NODE_REC_A = 5; //      record index + 1 of the A record set, 0 = none
export const NODE_REC_AAAA = 6; //   record index + 1 of the AAAA record set, 0 = none
export const NODE_NSEC_OFF = 7; //  byte offset (in the blob) of the node's NSEC type bitmap for NODATA answers: one length byte, then the bitmap (RFC 4034 §4.1.2)
export const NODE_RRSET_START = 8; // index of the node's first static RRset in the RRset table
export const NODE_RRSET_COUNT = 9; // number of static RRsets at the node (0 for GSLB-only names)
export const NODE_REC_CNAME = 10; // record index + 1 of the CNAME pool record (a domain whose servers are CNAME targets), 0 = none
export const NODE_NAME_INLINE = 11; // words 11-15: the name's first min(NODE_NAME_LEN, NODE_NAME_INLINE_BYTES) bytes (lower-case wire), zero-padded
export const NODE_WORDS = 16;
/** Name bytes a node row holds inline (words NODE_NAME_INLINE … NODE_WORDS − 1). */
export const NODE_NAME_INLINE_BYTES = (NODE_WORDS - NODE_NAME_INLINE) * 4;

/** The node is a zone apex: SOA and NS live here. */
export const NODE_FLAG_APEX = 1;
/** The node exists only because names exist below it (RFC 8020: NODATA, not NXDOMAIN). */
export const NODE_FLAG_ENT = 2;
/** The node is a delegation (static NS below an apex): queries at and below it get a referral. */
export const NODE_FLAG_CUT = 4;
/** The node holds a static CNAME: every query type but CNAME follows it. */
export const NODE_FLAG_CNAME = 8;
/** The node is a CNAME pool (NODE_REC_CNAME): every query type is answered with the CNAME the domain's policy picks. */
export const NODE_FLAG_CNAME_POOL = 16;

// Zone: per apex, the precomputed SOA, NS, glue and DNSKEY wire bytes.
export const ZONE_NODE = 0; //       node index of the apex
export const ZONE_APEX_LEN = 1; //   wire length of the apex name
export const ZONE_SOA_OFF = 2; //    byte offset (in the blob) of the SOA RR body: TYPE CLASS TTL RDLENGTH RDATA (owner written by the worker)
export const ZONE_SOA_LEN = 3; //    length of that body
export const ZONE_NEG_TTL = 4; //    TTL of the SOA in negative answers: min(SOA TTL, MINIMUM) (RFC 2308 §3)
export const ZONE_NS_OFF = 5; //     byte offset (in the blob) of NS RR bodies, back to back, each TYPE CLASS TTL RDLENGTH RDATA
export const ZONE_NS_COUNT = 6;
export const ZONE_NS_LEN = 7; //     total bytes of the NS bodies
export const ZONE_GLUE_OFF = 8; //   byte offset (in the blob) of complete A/AAAA RRs for in-zone name servers (uncompressed owners)
export const ZONE_GLUE_COUNT = 9;
export const ZONE_GLUE_LEN = 10;
export const ZONE_DNSKEY_OFF = 11; // byte offset (in the blob) of the DNSKEY RR bodies, back to back, each TYPE CLASS TTL RDLENGTH RDATA
export const ZONE_DNSKEY_COUNT = 12; // number of DNSKEY RRs; 0 when the zone is not signed
export const ZONE_DNSKEY_LEN = 13; // total bytes of the DNSKEY bodies
export const ZONE_SOA_TTL = 14; //  TTL of the SOA RRset (the Original TTL its RRSIG carries, also in negative answers)
export const ZONE_RESERVED = 15;
export const ZONE_WORDS = 16;

// Record: one address RRset source (one name, one family), routed per query.
// What a round-robin answer reads sits in the first eight words: records are
// 96 bytes in a table that starts on a 64-byte line, so words 0-7 of every
// record share one cache line.
export const REC_POLICY = 0; //      POLICY_*
export const REC_MEMBER_START = 1; // index of the first member in the members table
export const REC_MEMBER_COUNT = 2;
export const REC_MAX_ANSWERS = 3; // 1..32 distinct servers per answer
export const REC_FRAG_BASE = 4; //   byte offset (in the blob) of the first member's answer fragment; the record's members' and then its fallback members' fragments follow back to back, REC_FRAG_LEN bytes each (when that is not 0), so member m's is at REC_FRAG_BASE + (m − REC_MEMBER_START) × REC_FRAG_LEN without reading the member
export const REC_QTYPE = 5; //       1 (A), 28 (AAAA) or 5 (CNAME: a CNAME pool)
export const REC_FRAG_LEN = 6; //    bytes of each member's fragment: 16 for A, 28 for AAAA; 0 for CNAME (each fragment's own RDLENGTH + 12)
export const REC_STAT_ID = 7; //     routing-decision counter id of the (domain, algorithm); NO_SLOT for static data
export const REC_ALL_DOWN = 8; //    ALL_DOWN_*: what to answer when no member is healthy
export const REC_FALLBACK_START = 9; // index of the first fallback member (static, answered in ALL_DOWN_FALLBACK); always REC_MEMBER_START + REC_MEMBER_COUNT
export const REC_FALLBACK_COUNT = 10;
export const REC_LAST_UP_WINDOW = 11; // seconds: members last up within this of the most recent one count as "last healthy"
export const REC_MIN_SAMPLES = 12; // latency policy: samples every healthy member needs before latency decides
export const REC_MAX_LATENCY_US = 13; // latency policy: members above this are skipped while any is below
export const REC_TIE_MARGIN_US = 14; // latency policy: members within this of the fastest share answers
export const REC_NODE = 15; //       node index of the owner name
export const REC_GROUP_START = 16; // geolocation: index of the record's first region group in the group table
export const REC_GROUP_COUNT = 17; // geolocation: its region groups, one per region of the domain in order; 0 for other policies
export const REC_GEO_STAT_NOT_SERVED = 18; // geolocation: decision counter id of "the decided region is not one of the domain's"
export const REC_GEO_STAT_UNDECIDED = 19; // geolocation: decision counter id of "no region decided" (no mapping, no default)
export const REC_STICKY_V4_PREFIX = 20; // sticky: prefix length an IPv4 client address is cut to before hashing
export const REC_STICKY_V6_PREFIX = 21; // sticky: prefix length an IPv6 client address is cut to
export const REC_CHASE = 22; //      CNAME pool: 1 when some member's target lies inside one of our zones (the answer follows it), else 0
export const REC_TTL = 23; //        seconds (already baked into each member's fragment; kept for tooling and the signer)
export const RECORD_WORDS = 24;

/** Rotate over the healthy members, one step per answer. */
export const POLICY_ROUND_ROBIN = 0;
/** Random, proportional to weight, over healthy members of weight > 0. */
export const POLICY_WEIGHTED = 1;
/** The first healthy members in priority (member) order. */
export const POLICY_FAILOVER = 2;
/** Every member, no health: static data such as name-server addresses. */
export const POLICY_STATIC = 3;
/** The healthy member with the lowest latency EMA; near-ties rotate; round-robin until every member has enough samples. */
export const POLICY_LATENCY = 4;
/** The region the client's address maps to (custom CIDR > country > continent > default); weighted within it; the next region in order when it has none. */
export const POLICY_GEOLOCATION = 5;
/** The healthy member a client subnet hashes to (weighted rendezvous hashing): a client keeps its server while it is healthy. */
export const POLICY_STICKY = 6;

/** All members down: answer SERVFAIL. */
export const ALL_DOWN_SERVFAIL = 0;
/** All members down: answer, by the record's policy, the members that were healthy most recently. */
export const ALL_DOWN_LAST_HEALTHY = 1;
/** All members down: fail open, answer by the record's policy as if every member were healthy. */
export const ALL_DOWN_ALL = 2;
/** All members down: answer the record's fallback members. */
export const ALL_DOWN_FALLBACK = 3;

// Static RRset: one (owner, type) of dns.zones[].records, pre-built once per snapshot.
export const RS_TYPE = 0; //         RR type
export const RS_TTL = 1; //          TTL (seconds) of every record of the set
export const RS_COUNT = 2; //        number of records
export const RS_OFF = 3; //          byte offset (in the blob) of the RR bodies back to back: TYPE CLASS TTL RDLENGTH RDATA (owner written by the worker), names uncompressed
export const RS_LEN = 4; //          total bytes of those bodies
export const RS_GLUE_OFF = 5; //     NS delegation: byte offset (in the blob) of complete glue A/AAAA RRs (uncompressed owners) for the additional section
export const RS_GLUE_COUNT = 6;
export const RS_GLUE_LEN = 7;
export const RS_CHASE = 8; //        CNAME: 1 when the target lies inside one of our zones (the answer follows it), else 0
export const RS_RESERVED = 9;
export const RRSET_WORDS = 10;

// Member: one server inside a record, in priority order.
export const MEM_HEALTH_SLOT = 0; // index into the live health slots: this domain's own word for the server (override applied); NO_SLOT for static data
export const MEM_WEIGHT = 1; //      0..65535
export const MEM_FRAG_OFF = 2; //    byte offset (in the blob) of the complete answer RR: C0 0C TYPE CLASS TTL RDLENGTH RDATA
export const MEM_SERVER = 3; //      server id (the same id indexes the latency slots); NO_SLOT for static data
export const MEMBER_WORDS = 4;

// Group: one region of a geolocation record, in the domain's region order. The
// record's members are stored grouped the same way (a member belongs to the
// first region of the domain that lists its address).
export const GRP_REGION = 0; //      index of the region in the config's regions (what the geo table decides)
export const GRP_MEMBER_END = 1; //  record-relative member index one past the group's last member
export const GRP_STAT_CUSTOM = 2; // decision counter id: this region decided by a custom mapping
export const GRP_STAT_GEOIP = 3; //  … by country or continent
export const GRP_STAT_DEFAULT = 4; // … by default_region
export const GRP_STAT_FALLBACK = 5; // decided here but no member answerable: answered from a later region
export const GROUP_WORDS = 6;

/** Marks a member without a live slot (always answerable). */
export const NO_SLOT = 0xffffffff;

/** Size in bytes of an A answer fragment: pointer(2) type(2) class(2) ttl(4) rdlength(2) + 4. */
export const FRAG_LEN_A = 16;
/** Size in bytes of an AAAA answer fragment: 12 + 16. */
export const FRAG_LEN_AAAA = 28;
/** Upper bound on max_answers; 32 AAAA records still fit a 1232-byte UDP answer. */
export const MAX_ANSWERS_LIMIT = 32;
