// Main thread, cold path. Regular expressions that run in time linear in the
// input: V8's non-backtracking engine (the `l` flag), behind
// --enable-experimental-regexp-engine. health_check.body_match is written by
// an operator and run on up to 64 KiB of a body the backend controls, on the
// main thread; a pattern with catastrophic backtracking (`^(a+)+$`, or a
// polynomial one such as `.*x.*y.*z` on a long line) would block the
// overwatch for seconds or for ever. The linear engine cannot run
// backreferences or lookahead: such a pattern is refused at load with the
// reason (see docs/health-checks.md, "Check types").
//
// The flag only makes the `l` flag available; regular expressions without it
// run on the usual engine, unchanged. V8 flags are process-wide and this one
// is read when a RegExp is created, so setting it before the first `l`
// pattern is enough (checked on Node 24.21; Node documents changing V8 flags
// after start as unsupported, so test/health/probe.test.ts checks it runs).

import v8 from 'node:v8';

let enabled = false;

function enable(): void {
  if (enabled) return;
  v8.setFlagsFromString('--enable-experimental-regexp-engine');
  enabled = true;
}

/**
 * Compiles `pattern` (no flags of its own) for the linear-time engine.
 * Throws SyntaxError when it does not compile, with a message that says when
 * it is valid JavaScript but needs backtracking (a backreference `\1`, `\k<…>`
 * or a lookahead `(?=…)`, `(?!…)`).
 */
export function linearRegExp(pattern: string): RegExp {
  enable();
  try {
    return new RegExp(pattern, 'l');
  } catch (err) {
    // Invalid for both engines: the usual message (it names the pattern without the `l`).
    new RegExp(pattern);
    throw new SyntaxError('it needs backtracking (a backreference \\1 or \\k<name>, or a lookahead (?=…) or (?!…)), which the linear-time engine cannot run', { cause: err });
  }
}
