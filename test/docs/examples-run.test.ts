// The docs' command lines, run: against a real `opengslb` serving a copy of
// config/example.yaml (the config `npm start` serves; only its ports become
// port 0, its state directory a temporary one, and the API asks for the
// token the docs pass), every `curl` line of docs/api.md must get a 2xx,
// and every `opengslb` / `opengslb-cli` command line of docs/ (the `$ …`
// lines of console blocks and the lines of sh blocks) must exit as the
// output shown under it says: 0, or non-zero when the output is an error
// line after the program's name. Commands run in page order, so the
// overrides set in one example are there for the next.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { readFile, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { CLI, run, SERVER, startOpengslb } from '../helpers/child.ts';
import { tempDir } from '../helpers/config-files.ts';
import { ROOT } from '../helpers/markdown.ts';

const TOKEN = 'docs-example-token-0123456789';

/** The curl lines need curl (Debian package curl, which .ci/run installs). */
const NO_CURL = spawnSync('curl', ['--version']).status === 0 ? false : 'curl is not installed (apt-get install curl): the curl lines of docs/api.md were not run';

/** One command line of a page: where, what, and (console blocks) the output shown under it. */
interface DocCommand {
  readonly where: string;
  readonly line: string;
  readonly output: readonly string[] | null;
}

/** The command lines of a Markdown page: `$ ` lines of console blocks, and the lines of sh blocks that `select` keeps (continuations joined, comments dropped). */
function commandsOf(page: string, markdown: string, select: RegExp): DocCommand[] {
  const out: DocCommand[] = [];
  const lines = markdown.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const fence = /^```(console|sh)\s*$/.exec(lines[i]);
    if (fence === null) continue;
    let end = i + 1;
    while (end < lines.length && !/^```\s*$/.test(lines[end])) end++;
    const body = lines.slice(i + 1, end);
    for (let j = 0; j < body.length; j++) {
      let text = body[j];
      const at = `${page}:${i + 2 + j}`;
      if (fence[1] === 'console') {
        if (!text.startsWith('$ ')) continue;
        text = text.slice(2);
      }
      while (text.endsWith('\\') && j + 1 < body.length) text = text.slice(0, -1) + body[++j].trim();
      text = text.replace(/\s+#.*$/, '').trim();
      if (!select.test(text)) continue;
      let output: string[] | null = null;
      if (fence[1] === 'console') {
        output = [];
        for (let k = j + 1; k < body.length && !body[k].startsWith('$ '); k++) output.push(body[k]);
      }
      out.push({ where: at, line: text, output });
    }
    i = end;
  }
  return out;
}

/** Splits a command line into words as sh would for these lines (double and single quotes, no expansions needed). */
function words(line: string): string[] {
  const out: string[] = [];
  for (const m of line.matchAll(/"([^"]*)"|'([^']*)'|(\S+)/g)) out.push(m[1] ?? m[2] ?? m[3]);
  return out;
}

test('every curl line of docs/api.md and every opengslb command line of docs/ runs against the example config as shown', async (t) => {
  const dir = await tempDir(t, 'opengslb-docs-run-');
  const example = await readFile(join(ROOT, 'config/example.yaml'), 'utf8');
  const served = example
    .replace('listen_address: "127.0.0.1:8053"', 'listen_address: "127.0.0.1:0"')
    .replace('api: { enabled: true, address: "127.0.0.1:8080" }', 'api: { enabled: true, address: "127.0.0.1:0", token: "${OPENGSLB_API_TOKEN}" }')
    .replace('metrics: { enabled: true, address: "127.0.0.1:9090" }', 'metrics: { enabled: true, address: "127.0.0.1:0" }')
    .replace('overwatch: { data_dir: ../var }', 'overwatch: { data_dir: ./var }');
  for (const [from, what] of [['127.0.0.1:0"', 'ports'], ['token: "${OPENGSLB_API_TOKEN}"', 'the token'], ['data_dir: ./var', 'the state directory']]) {
    assert.ok(served.includes(from), `config/example.yaml changed: could not set ${what} in the copy`);
  }
  const file = join(dir, 'example.yaml');
  await writeFile(file, served, { mode: 0o600 });
  const env: NodeJS.ProcessEnv = { ...process.env, OPENGSLB_API_TOKEN: TOKEN, USER: 'alice' };
  delete env.OPENGSLB_TOKEN;
  const server = await startOpengslb(t, file, { env });
  const line = await server.out.waitFor(/API listening/);
  const port = /address=127\.0\.0\.1:(\d+)/.exec(line)?.[1] ?? /"address":"127\.0\.0\.1:(\d+)"/.exec(line)?.[1];
  assert.ok(port, line);
  const api = `http://127.0.0.1:${port}`;
  env.OPENGSLB_API = api;

  const pages = (await readdir(join(ROOT, 'docs'))).filter((f) => f.endsWith('.md')).sort().map((f) => `docs/${f}`);
  const commands: DocCommand[] = [];
  for (const page of pages) commands.push(...commandsOf(page, await readFile(join(ROOT, page), 'utf8'), /^(npx )?opengslb(-cli)?( |$)/));
  assert.ok(commands.length >= 20, `only ${commands.length} command lines found in docs/`);

  for (const c of commands) {
    await t.test(`${c.where}: ${c.line}`, async () => {
      const [program, ...args] = words(c.line.replace(/^npx /, ''));
      const shown = c.output?.find((l) => l.trim() !== '') ?? null;
      const fails = shown !== null && /^opengslb(-cli)?[ :]/.test(shown);
      // The reload failure example needs a config with a problem: give it one, then put the example back.
      const breaks = fails && args.join(' ') === 'reload';
      if (breaks) await writeFile(file, `${served}colour: blue\n`, { mode: 0o600 });
      try {
        const r = await run(program === 'opengslb' ? SERVER : CLI, args, { env });
        if (fails) {
          assert.notEqual(r.code, 0, `${c.line} exited 0, the page shows an error\nstdout:\n${r.stdout}`);
          assert.equal(r.stderr.split(/[ :]/)[0], shown.split(/[ :]/)[0], `stderr:\n${r.stderr}`);
        } else {
          assert.equal(r.code, 0, `${c.line}\nstdout:\n${r.stdout}\nstderr:\n${r.stderr}`);
          // The same kind of output as the page shows: its first word (a table header, "Override", "Query:", "{", …).
          if (shown !== null) assert.equal(r.stdout.split(/\s/)[0], shown.split(/\s/)[0], `stdout:\n${r.stdout}`);
        }
      } finally {
        if (breaks) await writeFile(file, served, { mode: 0o600 });
      }
    });
  }

  const curls = commandsOf('docs/api.md', await readFile(join(ROOT, 'docs/api.md'), 'utf8'), /^curl /);
  assert.ok(curls.length >= 5, `only ${curls.length} curl lines in docs/api.md`);
  for (const c of curls) {
    await t.test(`${c.where}: ${c.line.slice(0, 100)}`, { skip: NO_CURL }, async () => {
      const cmd = `${c.line.replaceAll('http://127.0.0.1:8080', api)} -o /dev/null -w '%{http_code}'`;
      const child = spawn('bash', ['-c', cmd], { env, stdio: ['ignore', 'pipe', 'pipe'] });
      let stdout = '';
      child.stdout.setEncoding('utf8').on('data', (s: string) => (stdout += s));
      const [code] = (await once(child, 'close')) as [number];
      assert.equal(code, 0, `curl failed: ${cmd}`);
      assert.match(stdout, /^2\d\d$/, `${cmd} answered HTTP ${stdout}`);
    });
  }
});
