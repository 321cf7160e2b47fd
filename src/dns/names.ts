// Any thread, cold path. Presentation-form names ⇄ wire form, for the
// snapshot compiler and tests. The hot path never calls these: it works on
// wire bytes in place (src/dns/parse.ts).

import { MAX_LABEL_LEN, MAX_NAME_LEN } from './constants.ts';

/**
 * Encodes a presentation name ("app.example.test", trailing dot optional,
 * "" or "." for the root) as lower-case, uncompressed wire bytes.
 * Throws a RangeError naming the name when a label is empty or too long, or
 * the name exceeds 255 octets; validated config never triggers it.
 */
export function nameToWire(name: string): Uint8Array {
  const trimmed = name.endsWith('.') ? name.slice(0, -1) : name;
  if (trimmed === '') return Uint8Array.of(0);
  const labels = trimmed.toLowerCase().split('.');
  let len = 1;
  for (const label of labels) {
    const bytes = Buffer.byteLength(label, 'ascii');
    if (bytes === 0) {
      throw new RangeError(`name "${name}" has an empty label (two dots in a row, or a leading dot), expected labels of 1..${MAX_LABEL_LEN} octets`);
    }
    if (bytes > MAX_LABEL_LEN) {
      throw new RangeError(`name "${name}" has a label of ${bytes} octets ("${label}"), expected at most ${MAX_LABEL_LEN} per label`);
    }
    len += bytes + 1;
  }
  if (len > MAX_NAME_LEN) throw new RangeError(`name "${name}" is ${len} octets in wire form, expected at most ${MAX_NAME_LEN}`);
  const out = new Uint8Array(len);
  let off = 0;
  for (const label of labels) {
    out[off++] = label.length;
    for (let i = 0; i < label.length; i++) out[off++] = label.charCodeAt(i);
  }
  out[off] = 0;
  return out;
}

/** Decodes uncompressed wire bytes back to presentation form without the trailing dot ("" for the root). */
export function wireToName(wire: Uint8Array): string {
  return readWireName(wire, 0).name;
}

/** Decodes the uncompressed wire name at `off`; `end` is the offset just past its root byte. */
export function readWireName(bytes: Uint8Array, off: number): { name: string; end: number } {
  const labels: string[] = [];
  while (off < bytes.length && bytes[off] !== 0) {
    const len = bytes[off];
    labels.push(String.fromCharCode(...bytes.subarray(off + 1, off + 1 + len)));
    off += len + 1;
  }
  return { name: labels.join('.'), end: off + 1 };
}

/** Returns the parent of a presentation name ("a.b.c" → "b.c", "c" → ""). */
export function parentName(name: string): string {
  const dot = name.indexOf('.');
  return dot < 0 ? '' : name.slice(dot + 1);
}

/** Tells whether `name` equals `apex` or lies below it (both lower-case, no trailing dot). */
export function isAtOrBelow(name: string, apex: string): boolean {
  return name === apex || name.endsWith('.' + apex);
}

/**
 * A fixed list of names (zone apexes, delegation points) that answers "which
 * of them is the closest at or above this name" by looking up the name and
 * each of its ancestors: a few map lookups per question however long the
 * list is, where testing every entry with isAtOrBelow made a question per
 * domain or record cost the whole list (quadratic in a config with many
 * zones). The closest is the longest such name; of equal names, the first
 * in the list. Names are lower-case without a trailing dot.
 */
export class EnclosingNames {
  readonly #index = new Map<string, number>();

  constructor(names: Iterable<string>) {
    let i = 0;
    for (const name of names) {
      if (!this.#index.has(name)) this.#index.set(name, i);
      i++;
    }
  }

  /** Whether `name` itself is in the list. */
  has(name: string): boolean {
    return this.#index.has(name);
  }

  /**
   * The list index of the closest name at or above `name` (strictly above
   * with `strict`), or −1. The root ("") encloses only itself, as with
   * isAtOrBelow.
   */
  closest(name: string, strict = false): number {
    if (name === '') return strict ? -1 : (this.#index.get('') ?? -1);
    for (let n = strict ? parentName(name) : name; n !== ''; n = parentName(n)) {
      const i = this.#index.get(n);
      if (i !== undefined) return i;
    }
    return -1;
  }
}

const FNV_PRIME = 0x01000193;
/** The FNV-1a state hashWire() starts from. */
export const FNV_OFFSET = 0x811c9dc5;

/**
 * Hashes wire-form name bytes with 32-bit FNV-1a. The compiler and the
 * workers must agree on this function exactly; it lives here so both import
 * one copy. Hot path: no allocation.
 */
export function hashWire(bytes: Uint8Array, off: number, len: number): number {
  let h = FNV_OFFSET;
  const end = off + len;
  for (let i = off; i < end; i++) {
    h ^= bytes[i];
    h = Math.imul(h, FNV_PRIME);
  }
  return h >>> 0;
}

/**
 * One step of hashWire() over byte `c` of a name, lower-casing A-Z first (a
 * label length byte is at most 63, below 'A'): hashing a wire name where it
 * arrived, in any case, this way gives hashWire() of its lower-case form
 * (finish with `>>> 0`).
 */
export function hashFoldedByte(h: number, c: number): number {
  return Math.imul(h ^ (c >= 0x41 && c <= 0x5a ? c | 0x20 : c), FNV_PRIME);
}
