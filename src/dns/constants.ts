// Any thread, shared by hot and cold paths. Wire codes and hard limits of the
// DNS protocol as the RFCs name them. Plain `as const` tables (no enums) so
// they erase to object literals V8 can constant-fold.

/** Resource record types we handle by name (RFC 1035 §3.2.2, RFC 3596, RFC 6891, RFC 5936). */
export const QTYPE = {
  A: 1,
  NS: 2,
  CNAME: 5,
  SOA: 6,
  PTR: 12,
  MX: 15,
  TXT: 16,
  AAAA: 28,
  OPT: 41,
  DS: 43,
  RRSIG: 46,
  NSEC: 47,
  DNSKEY: 48,
  /** RFC 9824 §2: a meta-type, only ever in a compact-denial NSEC's bitmap; asked for explicitly, FORMERR (§3.5). */
  NXNAME: 128,
  TKEY: 249,
  TSIG: 250,
  IXFR: 251,
  AXFR: 252,
  MAILB: 253,
  MAILA: 254,
  ANY: 255,
} as const;

/** Classes (RFC 1035 §3.2.4). */
export const QCLASS = {
  IN: 1,
  CH: 3,
  HS: 4,
  NONE: 254,
  ANY: 255,
} as const;

/** Opcodes (RFC 1035 §4.1.1, RFC 1996, RFC 2136). */
export const OPCODE = {
  QUERY: 0,
  IQUERY: 1,
  STATUS: 2,
  NOTIFY: 4,
  UPDATE: 5,
} as const;

/** Response codes; values above 15 need the OPT record's extended-rcode byte (RFC 6891 §6.1.3). */
export const RCODE = {
  NOERROR: 0,
  FORMERR: 1,
  SERVFAIL: 2,
  NXDOMAIN: 3,
  NOTIMP: 4,
  REFUSED: 5,
  /** RFC 8945 §5.2: a TSIG-signed query we cannot verify (with a TSIG RR saying why). */
  NOTAUTH: 9,
  BADVERS: 16,
} as const;

/** RFC 8945 §5.2.1: the TSIG error field for a key the server does not have. */
export const TSIG_ERROR_BADKEY = 17;

/** Header flag bits in the 16-bit flags word (RFC 1035 §4.1.1, RFC 4035 §3.2). */
export const FLAG = {
  QR: 0x8000,
  AA: 0x0400,
  TC: 0x0200,
  RD: 0x0100,
  RA: 0x0080,
  AD: 0x0020,
  CD: 0x0010,
} as const;

/** EDNS option codes (RFC 7871 ECS, RFC 7873 cookies, RFC 5001 NSID). */
export const EDNS_OPTION = {
  NSID: 3,
  ECS: 8,
  COOKIE: 10,
  /** edns-tcp-keepalive (RFC 7828): empty in a query, the idle timeout in units of 100 ms in a reply. */
  TCP_KEEPALIVE: 11,
} as const;

/** The DO bit inside the OPT record's TTL flags half (RFC 3225). */
export const EDNS_DO_BIT = 0x8000;

export const HEADER_LEN = 12;
/** RFC 1035 §2.3.4: a name is at most 255 octets in wire form. */
export const MAX_NAME_LEN = 255;
/** RFC 1035 §2.3.4: a label is at most 63 octets. */
export const MAX_LABEL_LEN = 63;
/** The smallest UDP payload a client may assume (RFC 1035 §4.2.1). */
export const MIN_UDP_PAYLOAD = 512;
/** Our advertised EDNS UDP payload size, the DNS Flag Day 2020 value that avoids IP fragmentation. */
export const OUR_UDP_PAYLOAD = 1232;
/** Largest DNS message (TCP's two-byte length prefix). */
export const MAX_MESSAGE_LEN = 65535;
/** Compression pointers followed while skipping a name; 127 is more than any legal name can need (RFC 1035 §4.1.4 points backwards only). */
export const MAX_POINTER_JUMPS = 127;
/** Additional-section records we are willing to walk to find the OPT record (OPT + TSIG + slack). */
export const MAX_ADDITIONAL_RECORDS = 4;
/** EDNS options walked in one OPT record before FORMERR. */
export const MAX_EDNS_OPTIONS = 16;
