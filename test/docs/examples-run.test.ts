// The docs' command lines, run: against a real `opengslb` serving a copy of
// config/example.yaml (the config `npm start` serves; only its ports become
// port 0, its state directory a temporary one, and the API asks for the
// token the docs pass), every `curl` line of docs/api.md must get a 2xx,
// and every `opengslb` / `opengslb-cli` command line of docs/ and
// docs/runbooks/ (the `$ …` lines of console blocks and the lines of sh
// blocks whose fence starts the line) must exit as the
// output shown under it says: 0, or non-zero when the output is an error
// line after the program's name. Commands run in page order, so the
// overrides set in one example are there for the next. The copy also has the
// agent channel on, with one real agent (a child process) reporting a local
// HTTP backend for two services, so the `agents` examples run against a live
// agent: the id the pages show is replaced by that agent's id.

import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { readFile, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { httpBackend } from '../helpers/backends.ts';
import { CLI, run, SERVER, startAgent, startOpengslb } from '../helpers/child.ts';
import { tempDir } from '../helpers/config-files.ts';
import { ROOT, shellWords } from '../helpers/markdown.ts';

const TOKEN = 'docs-example-token-0123456789';
const AGENT_TOKEN = 'docs-agent-token-0123456789ab';
/** The agent ids the pages show (region, then 12 hex digits of the certificate). */
const SHOWN_AGENT_ID = /\beu-west-[0-9a-f]{12}\b/g;

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

test('every curl line of docs/api.md and every opengslb command line of docs/ runs against the example config as shown', async (t) => {
  const dir = await tempDir(t, 'opengslb-docs-run-');
  const key = randomBytes(32).toString('base64');
  const example = await readFile(join(ROOT, 'config/example.yaml'), 'utf8');
  const served = example
    .replace('listen_address: "127.0.0.1:8053"', 'listen_address: "127.0.0.1:0"')
    .replace('api: { enabled: true, address: "127.0.0.1:8080" }', 'api: { enabled: true, address: "127.0.0.1:0", token: "${OPENGSLB_API_TOKEN}" }')
    .replace('metrics: { enabled: true, address: "127.0.0.1:9090" }', 'metrics: { enabled: true, address: "127.0.0.1:0" }')
    .replace(
      'overwatch: { data_dir: ../var }',
      `overwatch: { data_dir: ./var, agent_tokens: { app.example.test: ${AGENT_TOKEN}, api.example.test: ${AGENT_TOKEN} }, gossip: { encryption_key: "${key}", bind_address: "127.0.0.1:0" } }`,
    );
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
  const channelLine = await server.out.waitFor(/agent channel listening/);
  const gossip = /address=127\.0\.0\.1:(\d+)/.exec(channelLine)?.[1] ?? /"address":"127\.0\.0\.1:(\d+)"/.exec(channelLine)?.[1];
  assert.ok(gossip, channelLine);
  const agent = await startLiveAgent(t, dir, key, Number(gossip));

  // docs/*.md, then the runbooks (their other command lines, in indented blocks, are checked against the command tables by test/docs/runbooks.test.ts).
  const pages = [
    ...(await readdir(join(ROOT, 'docs'))).filter((f) => f.endsWith('.md')).sort().map((f) => `docs/${f}`),
    ...(await readdir(join(ROOT, 'docs/runbooks'))).filter((f) => f.endsWith('.md')).sort().map((f) => `docs/runbooks/${f}`),
  ];
  const commands: DocCommand[] = [];
  for (const page of pages) commands.push(...commandsOf(page, await readFile(join(ROOT, page), 'utf8'), /^(npx )?opengslb(-cli)?( |$)/));
  assert.ok(commands.length >= 20, `only ${commands.length} command lines found in docs/`);

  for (const c of commands) {
    await t.test(`${c.where}: ${c.line}`, async () => {
      const [program, ...args] = shellWords(c.line.replace(/^npx /, '').replaceAll(SHOWN_AGENT_ID, agent.agentId));
      // An agent revoked or deleted by an earlier example registers again (its next heartbeat is answered "register"); its own examples wait for that.
      if (args[0] === 'agents' && args[1] !== 'delete') await untilLive(api, agent.agentId);
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

/** Starts an agent in region eu-west reporting one local HTTP backend for app.example.test and api.example.test; resolves once the overwatch lists it live. */
async function startLiveAgent(t: TestContext, dir: string, key: string, gossipPort: number) {
  const backend = await httpBackend(t);
  const file = join(dir, 'agent.yaml');
  await writeFile(file, [
    'mode: agent',
    'agent:',
    `  identity: { service_token: ${AGENT_TOKEN}, region: eu-west, cert_path: ./agent.crt, key_path: ./agent.key }`,
    '  backends:',
    ...['app.example.test', 'api.example.test'].map((service) => `    - { service: ${service}, address: ${backend.address}, port: ${backend.port}, health_check: { type: http, path: /health, interval: 1s, timeout: 500ms } }`),
    `  gossip: { encryption_key: "${key}", overwatch_nodes: ["127.0.0.1:${gossipPort}"] }`,
    '  heartbeat: { interval: 1s, full_interval: 2s }',
    'logging: { level: info, format: json }',
  ].join('\n') + '\n', { mode: 0o600 });
  const agent = await startAgent(t, file, { cwd: dir });
  assert.match(agent.agentId, new RegExp(`^${SHOWN_AGENT_ID.source}$`), 'the pages show agent ids of this form');
  return agent;
}

/** Waits (up to 15 s, asking every 100 ms) until the overwatch lists agent `id` as live. */
async function untilLive(api: string, id: string): Promise<void> {
  const deadline = Date.now() + 15_000;
  let last = '';
  while (Date.now() < deadline) {
    const res = await fetch(`${api}/api/v1/overwatch/agents/${id}`);
    last = await res.text();
    if (res.ok && (JSON.parse(last) as { agent: { state: string } }).agent.state === 'live') return;
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.fail(`agent ${id} was not live again within 15 s: ${last}`);
}
