// docs/runbooks/: every command line of the project in them is one the
// project really has. Each `opengslb-cli` line (in any code block, indented
// or not, with or without a path before the program) is checked against the
// CLI's own command table: the command exists, its flags are known and take
// the right kind of value, and it gets as many arguments as it takes. Each
// `opengslb` line against the server's flags. Each `curl` line's method and
// path against the route table of docs/api.md (which test/api/routes.test.ts
// holds to the OpenAPI document). The lines of unindented sh blocks also run
// against a live overwatch in test/docs/examples-run.test.ts.

import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { checkCommandLine } from '../../src/cli/opengslb-cli-main.ts';
import { checkServerCommandLine } from '../../src/cli/opengslb-main.ts';
import { ROOT, shellWords } from '../helpers/markdown.ts';

const DIR = join(ROOT, 'docs/runbooks');
const PAGES = readdirSync(DIR).filter((f) => f.endsWith('.md')).sort();

interface Line {
  readonly where: string;
  readonly text: string;
}

/** Every line of every fenced code block of a page (fences may be indented), continuations joined, `$ ` prompts and comments dropped. */
function codeLines(page: string): Line[] {
  const lines = readFileSync(join(DIR, page), 'utf8').split('\n');
  const out: Line[] = [];
  for (let i = 0; i < lines.length; i++) {
    const fence = /^(\s*)```/.exec(lines[i]);
    if (fence === null) continue;
    let end = i + 1;
    while (end < lines.length && !/^\s*```\s*$/.test(lines[end])) end++;
    for (let j = i + 1; j < end; j++) {
      const at = j;
      let text = lines[j].trim();
      while (text.endsWith('\\') && j + 1 < end) text = text.slice(0, -1) + lines[++j].trim();
      text = text.replace(/^\$ /, '').replace(/\s+#.*$/, '').trim();
      if (text !== '') out.push({ where: `docs/runbooks/${page}:${at + 1}`, text });
    }
    i = end;
  }
  return out;
}

/** The routes of docs/api.md's table as [method, path pattern]. */
function apiRoutes(): [string, RegExp][] {
  const doc = readFileSync(join(ROOT, 'docs/api.md'), 'utf8');
  const out: [string, RegExp][] = [];
  for (const m of doc.matchAll(/^\| (GET|POST|PUT|DELETE|PATCH) \| `(\/api\/v1\/[^`?]*)[^`]*` \|/gm)) {
    out.push([m[1], new RegExp(`^${m[2].replace(/\{[^}]+\}/g, '[^/]+')}$`)]);
  }
  return out;
}

const PROGRAM = /^(?:sudo (?:-u \S+ )?)?(?:\S*\/)?(opengslb-cli|opengslb)(?= |$)/;

/**
 * A line that runs the program through `sudo sh -c '…; exec [setpriv FLAGS] PROGRAM …'` (the
 * foreground run with the unit's environment file and user) is checked as the PROGRAM line
 * it execs.
 */
function unwrapped(line: Line): Line {
  const inner = /^sudo sh -c '(?:[^']*;\s*)?exec (?:setpriv(?: --\S+)+ )?([^']*)'$/.exec(line.text);
  return inner === null ? line : { where: line.where, text: inner[1] };
}

const all = PAGES.flatMap(codeLines).map(unwrapped);

test('the checks catch what is wrong: an unknown command, flag or argument count, a server flag, a route', () => {
  assert.equal(checkCommandLine(['servers']), null);
  assert.equal(checkCommandLine(['config', 'validate', 'agent.yaml', '--mode', 'agent']), null);
  assert.match(checkCommandLine(['config', 'validate', 'agent.yaml', '--mode', 'relay']) ?? '', /--mode relay is not a mode/);
  assert.match(checkCommandLine(['overrides', 'sett']) ?? '', /unknown command "overrides sett"/);
  assert.match(checkCommandLine(['servers', '--colour']) ?? '', /--colour/);
  assert.match(checkCommandLine(['explain']) ?? '', /expected 1 argument, got 0/);
  assert.match(checkCommandLine(['dnssec', 'ds', '--zone']) ?? '', /--zone/);
  assert.equal(checkServerCommandLine(['--config', '/etc/opengslb/config.yaml']), null);
  assert.match(checkServerCommandLine(['--conf', 'x']) ?? '', /--conf/);
  assert.match(checkServerCommandLine(['--mode', 'proxy']) ?? '', /not a mode/);
  assert.ok(apiRoutes().some(([m, p]) => m === 'GET' && p.test('/api/v1/overrides/server/192.0.2.1')));
  // config validate, the same command in both programs: --environment-file takes a value; Node's own --env-file is not ours.
  for (const check of [checkCommandLine, checkServerCommandLine]) {
    assert.equal(check(['config', 'validate', 'c.yaml', '--environment-file', '/etc/opengslb/opengslb.env']), null);
    assert.match(check(['config', 'validate', 'c.yaml', '--env-file', 'x.env']) ?? '', /unknown flag --env-file/);
    assert.match(check(['config', 'validate', 'c.yaml', '--environment-file']) ?? '', /--environment-file needs a value/);
  }
  const wrapped = unwrapped({ where: 'x', text: "sudo sh -c 'set -a; . /etc/opengslb/opengslb.env; exec setpriv --reuid=opengslb --init-groups /opt/opengslb/bin/opengslb --conf /etc/opengslb/config.yaml'" });
  assert.equal(wrapped.text, '/opt/opengslb/bin/opengslb --conf /etc/opengslb/config.yaml');
  assert.match(checkServerCommandLine(shellWords(wrapped.text.replace(PROGRAM, ''))) ?? '', /--conf/);
});

test('every page of docs/runbooks/ is listed in its README, and every relative link of the runbooks points at a file that exists', () => {
  const readme = readFileSync(join(DIR, 'README.md'), 'utf8');
  for (const page of PAGES) if (page !== 'README.md') assert.ok(readme.includes(`](${page})`), `README.md links ${page}`);
  assert.ok(PAGES.length >= 9, PAGES.join(', '));
  for (const page of PAGES) {
    const text = readFileSync(join(DIR, page), 'utf8');
    for (const m of text.matchAll(/\]\(([^)#:]+)(#[^)]*)?\)/g)) {
      assert.ok(existsSync(join(dirname(join(DIR, page)), m[1])), `docs/runbooks/${page}: link ${m[1]}`);
    }
  }
});

test('every opengslb-cli line of docs/runbooks/ is a command the CLI has, with flags and arguments it takes', () => {
  const lines = all.filter((l) => PROGRAM.exec(l.text)?.[1] === 'opengslb-cli');
  assert.ok(lines.length >= 25, `${lines.length} opengslb-cli lines`);
  for (const l of lines) {
    const argv = shellWords(l.text.replace(PROGRAM, '')).filter((w) => w !== ';');
    assert.equal(checkCommandLine(argv), null, `${l.where}: ${l.text}`);
  }
});

test('every opengslb line of docs/runbooks/ is one the server takes', () => {
  const lines = all.filter((l) => PROGRAM.exec(l.text)?.[1] === 'opengslb');
  assert.ok(lines.length >= 3, `${lines.length} opengslb lines`);
  for (const l of lines) assert.equal(checkServerCommandLine(shellWords(l.text.replace(PROGRAM, ''))), null, `${l.where}: ${l.text}`);
});

test('every curl line of docs/runbooks/ calls a route of the admin API with its method', () => {
  const routes = apiRoutes();
  const lines = all.filter((l) => /^curl /.test(l.text));
  assert.ok(lines.length >= 1);
  for (const l of lines) {
    const w = shellWords(l.text);
    const x = w.indexOf('-X');
    const method = x >= 0 ? w[x + 1] : 'GET';
    const url = w.find((a) => /^https?:\/\//.test(a));
    assert.ok(url, `${l.where}: a URL`);
    const path = new URL(url).pathname;
    assert.ok(routes.some(([m, p]) => m === method && p.test(path)), `${l.where}: ${method} ${path} is not a route of docs/api.md`);
  }
});
