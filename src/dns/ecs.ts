// Worker, hot path. Checks one EDNS Client Subnet option (RFC 7871) of a
// query in place and copies its address into a reusable 16-byte buffer, ready
// for the geo lookup. Pure: no I/O, never throws, allocates nothing.
//
// Option DATA (RFC 7871 §6), after the 2-byte OPTION-CODE 8 and OPTION-LENGTH:
//
//   +0  FAMILY                  2 bytes   1 = IPv4, 2 = IPv6 (IANA address family numbers)
//   +2  SOURCE PREFIX-LENGTH    1 byte    ≤ 32 (IPv4), ≤ 128 (IPv6)
//   +3  SCOPE PREFIX-LENGTH     1 byte    0 in queries
//   +4  ADDRESS                 ceil(SOURCE / 8) bytes, bits past SOURCE zero

/** The option is well-formed; the address was copied. */
export const ECS_OK = 0;
/** FAMILY is neither 1 (IPv4) nor 2 (IPv6), or DATA is shorter than its 4 fixed bytes. */
export const ECS_ERR_FAMILY = -1;
/** SOURCE PREFIX-LENGTH is longer than the family's address (32 or 128 bits). */
export const ECS_ERR_PREFIX = -2;
/** OPTION-LENGTH is not 4 + ceil(SOURCE PREFIX-LENGTH / 8): too few or too many ADDRESS bytes. */
export const ECS_ERR_LENGTH = -3;
/** ADDRESS has a bit set beyond SOURCE PREFIX-LENGTH. */
export const ECS_ERR_PADDING = -4;
/** SCOPE PREFIX-LENGTH is not 0, as a query must send it. */
export const ECS_ERR_SCOPE = -5;

/** FAMILY values. */
export const ECS_FAMILY_IPV4 = 1;
export const ECS_FAMILY_IPV6 = 2;

/**
 * Checks the ECS option DATA at `msg[dataOff, dataOff + dataLen)` and, when it
 * is well-formed, writes its address into `addr` (≥ 16 bytes; the caller's
 * scratch, overwritten by every call): an IPv4 address in addr[0..4), an IPv6
 * one in addr[0..16), each zero-filled past the source prefix. The caller has
 * checked that the option lies inside the packet.
 *
 * Returns ECS_OK, or a negative ECS_ERR_* code; every one of them means
 * answer FORMERR. RFC 7871 §6: too few or too many ADDRESS bytes, or non-zero
 * bits beyond SOURCE PREFIX-LENGTH, SHOULD get FORMERR; §7.2.1: a wrongly
 * formatted option, such as an unknown FAMILY, MUST get FORMERR. A SCOPE other
 * than 0 breaks §6's "MUST be set to 0" in queries; it is refused too, as
 * src/dns/parse.ts does. `addr` is untouched on error.
 *
 * SOURCE PREFIX-LENGTH 0 is valid (§7.1.2: the client asks that no address
 * be used); the address is then all zero and the caller must not route on it.
 */
export function readEcsOption(msg: Uint8Array, dataOff: number, dataLen: number, addr: Uint8Array): number {
  if (dataLen < 4) return ECS_ERR_FAMILY;
  const family = (msg[dataOff] << 8) | msg[dataOff + 1];
  const bits = family === ECS_FAMILY_IPV4 ? 32 : family === ECS_FAMILY_IPV6 ? 128 : 0;
  if (bits === 0) return ECS_ERR_FAMILY;
  const source = msg[dataOff + 2];
  if (source > bits) return ECS_ERR_PREFIX;
  const addrLen = (source + 7) >> 3;
  if (dataLen !== 4 + addrLen) return ECS_ERR_LENGTH;
  if (msg[dataOff + 3] !== 0) return ECS_ERR_SCOPE;
  const addrOff = dataOff + 4;
  // Only the last ADDRESS byte can hold bits past the prefix: the length check
  // above already refused any byte beyond ceil(source / 8).
  const spare = source & 7;
  if (spare !== 0 && (msg[addrOff + addrLen - 1] & (0xff >> spare)) !== 0) return ECS_ERR_PADDING;
  for (let i = 0; i < addrLen; i++) addr[i] = msg[addrOff + i];
  const end = bits >> 3;
  for (let i = addrLen; i < end; i++) addr[i] = 0;
  return ECS_OK;
}

/** Returns the address length in bytes of an ECS FAMILY (4 or 16), or 0 for any other family. */
export function ecsAddressLength(family: number): number {
  return family === ECS_FAMILY_IPV4 ? 4 : family === ECS_FAMILY_IPV6 ? 16 : 0;
}
