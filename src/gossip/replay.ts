// Main thread (overwatch), per message. Replay protection: a per-agent
// sliding window over sequence numbers as RFC 6479 describes it (a ring of
// 32-bit blocks plus one spare block, so sliding clears whole blocks instead
// of shifting bits), and a window on the sender's timestamp.
//
// Across a restart each agent's window starts above the highest number it
// had accepted (kept in the state store, channel.ts: ReplayWindow.after), and
// the timestamp rule "not older than this process" covers agents with no
// stored mark (a lost state directory): a message recorded before the
// overwatch started is not accepted after it.

/** Bits per block of the bitmap. */
const BLOCK_BITS = 32;
/** Blocks in the ring; one of them is the spare, so the window is (BLOCKS - 1) * 32 sequence numbers. */
const BLOCKS = 33;
/** How far behind the highest accepted sequence number a message may arrive and still be accepted once. */
export const REPLAY_WINDOW = (BLOCKS - 1) * BLOCK_BITS;

/** What checking a sequence number says. */
export type SeqCheck = 'ok' | 'replayed' | 'outside_window';

/**
 * Remembers which of the last REPLAY_WINDOW sequence numbers of one agent
 * were accepted. check() is pure; accept() records a number once the message
 * carrying it passed every other check, so a forged message never moves the
 * window. Sequence numbers are safe integers (up to 2^53).
 */
export class ReplayWindow {
  #top = -1;
  readonly #bitmap = new Uint32Array(BLOCKS);

  /**
   * A window in which every number up to `seq` counts as seen (a replay
   * mark kept across a restart): numbers within REPLAY_WINDOW of it are
   * `replayed`, older ones `outside_window`, higher ones new.
   */
  static after(seq: number): ReplayWindow {
    const w = new ReplayWindow();
    w.#top = seq;
    w.#bitmap.fill(0xffffffff);
    // The block holding `seq`: only the numbers up to it; those above are still to come.
    const bit = seq % BLOCK_BITS;
    w.#bitmap[Math.floor(seq / BLOCK_BITS) % BLOCKS] = bit === BLOCK_BITS - 1 ? 0xffffffff : (1 << (bit + 1)) - 1;
    return w;
  }

  /** The highest accepted sequence number, or -1 before the first. */
  get top(): number {
    return this.#top;
  }

  /** Tells whether `seq` may be accepted: new, or inside the window and not seen. */
  check(seq: number): SeqCheck {
    if (this.#top < 0 || seq > this.#top) return 'ok';
    if (this.#top - seq >= REPLAY_WINDOW) return 'outside_window';
    const block = Math.floor(seq / BLOCK_BITS) % BLOCKS;
    return (this.#bitmap[block] & (1 << (seq % BLOCK_BITS))) !== 0 ? 'replayed' : 'ok';
  }

  /** Records `seq` as seen; call only after check(seq) returned 'ok'. */
  accept(seq: number): void {
    if (seq > this.#top) {
      const newIndex = Math.floor(seq / BLOCK_BITS);
      // RFC 6479 §2: clear the blocks the window slides over (all of them after a jump longer than the ring).
      const oldIndex = this.#top < 0 ? newIndex - BLOCKS : Math.floor(this.#top / BLOCK_BITS);
      const clear = Math.min(newIndex - oldIndex, BLOCKS);
      for (let i = 1; i <= clear; i++) this.#bitmap[(oldIndex + i) % BLOCKS] = 0;
      this.#top = seq;
    }
    this.#bitmap[Math.floor(seq / BLOCK_BITS) % BLOCKS] |= 1 << (seq % BLOCK_BITS);
  }
}

/** What checking a timestamp says. */
export type TimestampCheck = 'ok' | 'clock_skew' | 'too_old';

/**
 * Checks a sender timestamp against this clock: more than `maxSkewMs` ahead
 * is clock_skew; more than `maxSkewMs` behind, or before `notBeforeMs` (when
 * this receiver started), is too_old. All values are epoch milliseconds.
 */
export function checkTimestamp(timestampMs: number, nowMs: number, maxSkewMs: number, notBeforeMs: number): TimestampCheck {
  if (timestampMs > nowMs + maxSkewMs) return 'clock_skew';
  if (timestampMs < nowMs - maxSkewMs || timestampMs < notBeforeMs) return 'too_old';
  return 'ok';
}
