// The flag parser both programs share (src/cli/args.ts): every way Node's
// util.parseArgs refuses a command line comes back in the project's words,
// naming the flag and what was expected. And, through the real entry points,
// every error either program prints begins with the program's name.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FlagError, parseFlags } from '../../src/cli/args.ts';
import { CLI, run, SERVER } from '../helpers/child.ts';

const OPTIONS = {
  config: { type: 'string', short: 'c' },
  domain: { type: 'string' },
  json: { type: 'boolean' },
  verbose: { type: 'boolean', short: 'v' },
} as const;

for (const c of [
  { name: 'an unknown long flag', args: ['--bogus'], expect: 'unknown flag --bogus' },
  { name: 'an unknown short flag', args: ['-x'], expect: 'unknown flag -x' },
  { name: 'a misspelt flag, with the nearest known one', args: ['--domian', 'a'], expect: 'unknown flag --domian; did you mean --domain?' },
  { name: 'a long flag without its value', args: ['--domain'], expect: '--domain needs a value' },
  { name: 'a short flag without its value, named by its long form', args: ['-c'], expect: '--config needs a value' },
  { name: 'a value that looks like a flag', args: ['--domain', '--json'], expect: '--domain needs a value, but the next word "--json" is a flag; if that is the value, write --domain=--json' },
  { name: 'a value given to a switch', args: ['--json=1'], expect: '--json is a switch and takes no value' },
]) {
  test(`parseFlags reports ${c.name} in its own words`, () => {
    assert.throws(() => parseFlags(c.args, OPTIONS, true), (err: Error) => {
      assert.ok(err instanceof FlagError);
      assert.equal(err.message, c.expect);
      return true;
    });
  });
}

test('parseFlags reports a positional argument where none is taken', () => {
  assert.throws(() => parseFlags(['extra'], OPTIONS, false), { name: 'FlagError', message: 'unexpected argument "extra": this command takes flags only' });
});

test('parseFlags returns values by long name and the positionals', () => {
  const { values, positionals } = parseFlags(['-c', 'x.yaml', 'a', '--json', '--domain=-odd'], OPTIONS, true);
  assert.deepEqual({ ...values }, { config: 'x.yaml', json: true, domain: '-odd' });
  assert.deepEqual(positionals, ['a']);
});

for (const c of [
  { program: 'opengslb', entry: SERVER, args: ['--bogus'] },
  { program: 'opengslb', entry: SERVER, args: ['--config'] },
  { program: 'opengslb', entry: SERVER, args: ['stray'] },
  { program: 'opengslb', entry: SERVER, args: ['--mode', 'gateway'] },
  { program: 'opengslb', entry: SERVER, args: ['config', 'validate'] },
  { program: 'opengslb', entry: SERVER, args: ['config', 'validate', '/nonexistent/opengslb.yaml'] },
  { program: 'opengslb', entry: SERVER, args: ['--config', '/nonexistent/opengslb.yaml'] },
  { program: 'opengslb-cli', entry: CLI, args: [] },
  { program: 'opengslb-cli', entry: CLI, args: ['frobnicate'] },
  { program: 'opengslb-cli', entry: CLI, args: ['servers', '--bogus'] },
  { program: 'opengslb-cli', entry: CLI, args: ['config', 'validate'] },
  { program: 'opengslb-cli', entry: CLI, args: ['config', 'validate', '--bogus', 'x'] },
  { program: 'opengslb-cli', entry: CLI, args: ['config', 'validate', '/nonexistent/opengslb.yaml'] },
  { program: 'opengslb-cli', entry: CLI, args: ['status', '--api', 'ftp://example.test'] },
  { program: 'opengslb-cli', entry: CLI, args: ['status', '--timeout', '5x'] },
]) {
  test(`${c.program} ${c.args.join(' ')}: the error begins with the program name`, async () => {
    const r = await run(c.entry, c.args);
    assert.notEqual(r.code, 0);
    assert.ok(r.stderr.startsWith(`${c.program}: `) || r.stderr.startsWith(`${c.program} `), `stderr:\n${r.stderr}`);
    // No Node.js wording, no stack trace.
    assert.doesNotMatch(r.stderr, /Unknown option|argument missing|ERR_PARSE_ARGS|\n\s+at /);
  });
}
