// Main thread (agent and overwatch), per TCP chunk. Length framing for
// sealed messages on a TCP stream: a 4-byte big-endian length, then that many
// bytes. Four bytes, not DNS's two, so a registration with many backends is
// never capped at 64 KiB; the receiver's limit bounds it instead.

/** Bytes of the length prefix. */
export const FRAME_HEADER_LEN = 4;

/** Prefixes `payload` with its length; returns a new Buffer. */
export function encodeFrame(payload: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(FRAME_HEADER_LEN + payload.length);
  out.writeUInt32BE(payload.length, 0);
  out.set(payload, FRAME_HEADER_LEN);
  return out;
}

/**
 * Splits a byte stream into frames. Holds at most one partial frame (never
 * more than FRAME_HEADER_LEN + maxFrameBytes bytes): a length above
 * `maxFrameBytes` makes push() return 'too_large' and the reader unusable.
 */
export class FrameReader {
  readonly #maxFrameBytes: number;
  #chunks: Buffer[] = [];
  #buffered = 0;
  #failed = false;

  constructor(maxFrameBytes: number) {
    this.#maxFrameBytes = maxFrameBytes;
  }

  /** Bytes held while waiting for the rest of a frame. */
  get buffered(): number {
    return this.#buffered;
  }

  /**
   * Adds a chunk and returns the frames it completed, in order (each a Buffer
   * the caller may keep), or 'too_large' once a frame announces more than
   * the limit. `chunk` may be kept until its frame is complete.
   */
  push(chunk: Buffer): Buffer[] | 'too_large' {
    if (this.#failed) return 'too_large';
    this.#chunks.push(chunk);
    this.#buffered += chunk.length;
    const frames: Buffer[] = [];
    while (this.#buffered >= FRAME_HEADER_LEN) {
      const head = this.#peek(FRAME_HEADER_LEN);
      const len = head.readUInt32BE(0);
      if (len > this.#maxFrameBytes) {
        this.#failed = true;
        this.#chunks = [];
        this.#buffered = 0;
        return 'too_large';
      }
      if (this.#buffered < FRAME_HEADER_LEN + len) break;
      const all = this.#chunks.length === 1 ? this.#chunks[0] : Buffer.concat(this.#chunks, this.#buffered);
      frames.push(all.subarray(FRAME_HEADER_LEN, FRAME_HEADER_LEN + len));
      const rest = all.subarray(FRAME_HEADER_LEN + len);
      this.#chunks = rest.length > 0 ? [rest] : [];
      this.#buffered = rest.length;
    }
    return frames;
  }

  #peek(n: number): Buffer {
    const first = this.#chunks[0];
    if (first.length >= n) return first;
    return Buffer.concat(this.#chunks, this.#buffered).subarray(0, n);
  }
}
