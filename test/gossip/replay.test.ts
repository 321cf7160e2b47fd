import { test } from 'node:test';
import assert from 'node:assert/strict';
import { checkTimestamp, REPLAY_WINDOW, ReplayWindow } from '../../src/gossip/replay.ts';

/** Checks then accepts, as the channel does for a message that passed everything else. */
function take(w: ReplayWindow, seq: number): string {
  const r = w.check(seq);
  if (r === 'ok') w.accept(seq);
  return r;
}

test('the window is 1024 sequence numbers wide', () => {
  assert.equal(REPLAY_WINDOW, 1024);
});

test('a fresh window takes any first sequence number, then refuses it again', () => {
  const w = new ReplayWindow();
  assert.equal(take(w, 1_741_000_000_000 * 1024), 'ok');
  assert.equal(take(w, 1_741_000_000_000 * 1024), 'replayed');
});

test('increasing numbers are taken, each only once', () => {
  const w = new ReplayWindow();
  for (let s = 10; s < 3000; s++) assert.equal(take(w, s), 'ok', `seq ${s}`);
  for (let s = 3000 - REPLAY_WINDOW; s < 3000; s++) assert.equal(w.check(s), 'replayed', `seq ${s}`);
});

test('a reordered number inside the window is taken once; beyond it, outside_window', () => {
  const w = new ReplayWindow();
  assert.equal(take(w, 5000), 'ok');
  assert.equal(take(w, 5000 - 1), 'ok');
  assert.equal(take(w, 5000 - 1), 'replayed');
  assert.equal(take(w, 5000 - (REPLAY_WINDOW - 1)), 'ok');
  assert.equal(take(w, 5000 - REPLAY_WINDOW), 'outside_window');
  assert.equal(take(w, 0), 'outside_window');
});

test('a jump far ahead forgets the old window but keeps refusing what is now too old', () => {
  const w = new ReplayWindow();
  for (let s = 100; s < 200; s++) take(w, s);
  assert.equal(take(w, 1_000_000), 'ok');
  assert.equal(take(w, 150), 'outside_window');
  // Numbers just below the new top were never seen: the cleared blocks must not carry old bits.
  for (let s = 1_000_000 - REPLAY_WINDOW + 1; s < 1_000_000; s++) assert.equal(w.check(s), 'ok', `seq ${s}`);
});

test('a window started after a stored mark refuses every number up to it and takes those above, each once', () => {
  for (const mark of [5000, 5000 + 30, 5000 + 31, 5000 + 32, 2 ** 45 + 17]) {
    const w = ReplayWindow.after(mark);
    assert.equal(w.top, mark);
    for (let s = mark - REPLAY_WINDOW + 1; s <= mark; s++) assert.equal(w.check(s), 'replayed', `mark ${mark}, seq ${s}`);
    assert.equal(w.check(mark - REPLAY_WINDOW), 'outside_window');
    // Above the mark, out of order: each number once, none refused for bits the mark set.
    assert.equal(take(w, mark + 3), 'ok');
    assert.equal(take(w, mark + 1), 'ok');
    assert.equal(take(w, mark + 2), 'ok');
    assert.equal(take(w, mark + 2), 'replayed');
    assert.equal(take(w, mark + 40), 'ok');
    assert.equal(take(w, mark + 39), 'ok');
    assert.equal(w.check(mark), 'replayed');
  }
});

test('check() never moves the window: a forged message cannot push real ones out', () => {
  const w = new ReplayWindow();
  take(w, 10_000);
  assert.equal(w.check(10_000 + 5 * REPLAY_WINDOW), 'ok');
  assert.equal(w.top, 10_000);
  assert.equal(take(w, 9_999), 'ok');
});

test('the window agrees with a plain set of seen numbers on a random walk', () => {
  const w = new ReplayWindow();
  const seen = new Set<number>();
  let top = -1;
  let x = 123456789;
  const rnd = (): number => {
    x = (x * 1103515245 + 12345) % 2147483648;
    return x / 2147483648;
  };
  let base = 2 ** 40;
  for (let i = 0; i < 20_000; i++) {
    base += Math.floor(rnd() * 40);
    const seq = base - Math.floor(rnd() * 1500);
    const expected = top >= 0 && top - seq >= REPLAY_WINDOW ? 'outside_window' : seen.has(seq) ? 'replayed' : 'ok';
    assert.equal(take(w, seq), expected, `step ${i}, seq ${seq}, top ${top}`);
    if (expected === 'ok') {
      seen.add(seq);
      top = Math.max(top, seq);
    }
  }
});

const now = 1_800_000_000_000;
const timestampCases: { name: string; ts: number; expect: string }[] = [
  { name: 'the current time', ts: now, expect: 'ok' },
  { name: 'the skew ahead', ts: now + 30_000, expect: 'ok' },
  { name: 'just past the skew ahead', ts: now + 30_001, expect: 'clock_skew' },
  { name: 'the skew behind', ts: now - 30_000, expect: 'ok' },
  { name: 'just past the skew behind', ts: now - 30_001, expect: 'too_old' },
  { name: 'before the receiver started', ts: now - 10_001, expect: 'too_old' },
];

for (const c of timestampCases) {
  test(`checkTimestamp says ${c.expect} for ${c.name}`, () => {
    const startedAt = c.name.startsWith('before') ? now - 10_000 : 0;
    assert.equal(checkTimestamp(c.ts, now, 30_000, startedAt), c.expect);
  });
}
