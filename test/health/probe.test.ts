import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EventEmitter, once } from 'node:events';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import type { TLSSocket } from 'node:tls';
import { BODY_LIMIT_BYTES, USER_AGENT, hostHeader, reasonForError, runProbe, specProblem, startProbe } from '../../src/health/probe.ts';
import type { ProbeResult } from '../../src/health/types.ts';
import { closedPort, leafCertificate, listen, makeSpec, testCertificates } from './helpers.ts';

/** Starts an HTTP server on `host`:0 whose handler the test supplies; returns its port and the requests it saw. */
async function httpServer(t: import('node:test').TestContext, handler: http.RequestListener, host = '127.0.0.1') {
  const requests: http.IncomingMessage[] = [];
  const peers: (string | undefined)[] = [];
  const server = http.createServer((req, res) => {
    requests.push(req);
    peers.push(req.socket.remoteAddress);
    handler(req, res);
  });
  const port = await listen(t, server, host);
  return { port, requests, peers };
}

/** Starts a raw TCP server that writes `response` (or runs `onSocket`) to every connection. */
async function rawServer(t: import('node:test').TestContext, onSocket: (s: net.Socket) => void, host = '127.0.0.1') {
  const server = net.createServer(onSocket);
  return listen(t, server, host);
}

test('an HTTP check passes on 200 and reports the round trip as latency', async (t) => {
  const { port } = await httpServer(t, (_req, res) => res.end('ok'));
  const r = await runProbe(makeSpec({ port }));
  assert.equal(r.ok, true);
  assert.equal(r.reason, '');
  assert.ok(r.latencyMs > 0 && r.latencyMs < 2000, `latency ${r.latencyMs}`);
});

test('an HTTP check fails with "status 503" on a 503', async (t) => {
  const { port } = await httpServer(t, (_req, res) => {
    res.statusCode = 503;
    res.end('down');
  });
  assert.deepEqual({ ...(await runProbe(makeSpec({ port }))), latencyMs: 0 }, { ok: false, latencyMs: 0, reason: 'status 503' });
});

const statusCases: { name: string; status: number; ranges: [number, number][]; ok: boolean }[] = [
  { name: 'a 302 passes the default 200-399', status: 302, ranges: [[200, 399]], ok: true },
  { name: 'a 404 fails the default 200-399', status: 404, ranges: [[200, 399]], ok: false },
  { name: 'a 204 fails when only 200 and 300-399 are expected', status: 204, ranges: [[200, 200], [300, 399]], ok: false },
  { name: 'a 301 passes when only 200 and 300-399 are expected', status: 301, ranges: [[200, 200], [300, 399]], ok: true },
  { name: 'a 401 passes when 401 is listed', status: 401, ranges: [[200, 299], [401, 401]], ok: true },
  { name: 'a 503 passes when 500-599 is expected (an inverted check)', status: 503, ranges: [[500, 599]], ok: true },
];
for (const c of statusCases) {
  test(`expected_status: ${c.name}`, async (t) => {
    const { port } = await httpServer(t, (_req, res) => {
      res.statusCode = c.status;
      res.end();
    });
    const r = await runProbe(makeSpec({ port, expectedStatus: c.ranges }));
    assert.equal(r.ok, c.ok);
    assert.equal(r.reason, c.ok ? '' : `status ${c.status}`);
  });
}

test('an HTTP check sends GET on the path with Host, User-Agent, Connection: close and the extra headers', async (t) => {
  const { port, requests } = await httpServer(t, (_req, res) => res.end());
  const r = await runProbe(makeSpec({ port, path: '/status?full=1', headers: { 'X-Check': 'gslb', Authorization: 'Bearer abc' } }));
  assert.equal(r.ok, true);
  const req = requests[0];
  assert.equal(req.method, 'GET');
  assert.equal(req.url, '/status?full=1');
  assert.equal(req.headers.host, `127.0.0.1:${port}`);
  assert.equal(req.headers['user-agent'], USER_AGENT);
  assert.match(USER_AGENT, /^OpenGSLB-healthcheck\/\d+\.\d+\.\d+/);
  assert.equal(req.headers.connection, 'close');
  assert.equal(req.headers['x-check'], 'gslb');
  assert.equal(req.headers.authorization, 'Bearer abc');
});

test('a server host name is sent as the Host header', async (t) => {
  const { port, requests } = await httpServer(t, (_req, res) => res.end());
  await runProbe(makeSpec({ port, host: 'app.example.com' }));
  assert.equal(requests[0].headers.host, `app.example.com:${port}`);
});

test('a headers entry may replace the User-Agent, and header names are not duplicated', async (t) => {
  const { port, requests } = await httpServer(t, (_req, res) => res.end());
  await runProbe(makeSpec({ port, headers: { 'user-agent': 'custom/1' } }));
  assert.equal(requests[0].headers['user-agent'], 'custom/1');
  assert.equal(requests[0].rawHeaders.filter((h) => h.toLowerCase() === 'user-agent').length, 1);
});

test('an IPv6 server is checked over ::1 with the Host header in brackets', async (t) => {
  const { port, requests, peers } = await httpServer(t, (_req, res) => res.end('v6'), '::1');
  const r = await runProbe(makeSpec({ address: '::1', port }));
  assert.equal(r.ok, true, r.reason);
  assert.equal(requests[0].headers.host, `[::1]:${port}`);
  assert.deepEqual(peers, ['::1']);
});

test('the Host header leaves out the default port of the scheme and brackets IPv6', () => {
  assert.equal(hostHeader(makeSpec({ address: '10.0.0.1', port: 80 })), '10.0.0.1');
  assert.equal(hostHeader(makeSpec({ address: '10.0.0.1', port: 443 })), '10.0.0.1:443');
  assert.equal(hostHeader(makeSpec({ type: 'https', address: '2001:db8::1', port: 443 })), '[2001:db8::1]');
  assert.equal(hostHeader(makeSpec({ type: 'https', address: '2001:db8::1', port: 8443 })), '[2001:db8::1]:8443');
  assert.equal(hostHeader(makeSpec({ address: '2001:db8::1', port: 80, host: 'www.example.com' })), 'www.example.com');
});

// ── body_match ────────────────────────────────────────────────────────────

test('body_match: a substring in the body passes, a missing one fails with "body mismatch"', async (t) => {
  const { port } = await httpServer(t, (_req, res) => res.end('{"status":"ok","db":"up"}'));
  assert.equal((await runProbe(makeSpec({ port, bodyMatch: { kind: 'substring', pattern: '"db":"up"' } }))).ok, true);
  const r = await runProbe(makeSpec({ port, bodyMatch: { kind: 'substring', pattern: '"db":"down"' } }));
  assert.deepEqual([r.ok, r.reason], [false, 'body mismatch']);
});

test('body_match: a regex is applied to the decoded UTF-8 body', async (t) => {
  const { port } = await httpServer(t, (_req, res) => res.end('état: prêt, version 4.12'));
  assert.equal((await runProbe(makeSpec({ port, bodyMatch: { kind: 'regex', pattern: 'état: pr.t, version \\d+\\.\\d+' } }))).ok, true);
  assert.equal((await runProbe(makeSpec({ port, bodyMatch: { kind: 'regex', pattern: '^version' } }))).reason, 'body mismatch');
});

test('body_match: an invalid regex fails every probe with a reason instead of throwing', async () => {
  const r = await runProbe(makeSpec({ port: 1, bodyMatch: { kind: 'regex', pattern: '(unclosed' } }));
  assert.deepEqual([r.ok, r.reason], [false, 'error: invalid body_match regex']);
});

test('body_match: a pattern with catastrophic backtracking runs in linear time on a body built to trigger it, so the checker is not blocked', async (t) => {
  // /^(a+)+$/ on 30 "a" and a "!" takes the backtracking engine 2^30 steps (seconds; each
  // further "a" doubles it); a body made of that over 64 KiB is beyond any time at all.
  const { port } = await httpServer(t, (req, res) => res.end(req.url === '/long' ? `${'a'.repeat(BODY_LIMIT_BYTES - 1)}!` : `${'a'.repeat(30)}!`));
  for (const [path, pattern] of [['/health', '^(a+)+$'], ['/long', '^(a+)+$'], ['/long', '(\\w|\\d)+$x'], ['/long', '.*.*.*x.*y']] as const) {
    let lagMs = 0;
    let last = performance.now();
    const tick = setInterval(() => {
      lagMs = Math.max(lagMs, performance.now() - last);
      last = performance.now();
    }, 10);
    const r = await runProbe(makeSpec({ port, path, timeoutMs: 5000, bodyMatch: { kind: 'regex', pattern } }));
    clearInterval(tick);
    assert.deepEqual([path, pattern, r.ok, r.reason], [path, pattern, false, 'body mismatch']);
    assert.ok(r.latencyMs < 1000 && lagMs < 1000, `${path} ${pattern}: latency ${r.latencyMs} ms, event loop lag ${lagMs} ms`);
  }
  // The same engine still finds what it should.
  assert.equal((await runProbe(makeSpec({ port, bodyMatch: { kind: 'regex', pattern: '^(a+)+!$' } }))).ok, true);
});

test('body_match: a regex the linear-time engine cannot run (backreference, lookahead) fails every probe with a reason', async () => {
  for (const pattern of ['(ok)\\1', 'ok(?=!)', 'ok(?!x)']) {
    const r = await runProbe(makeSpec({ port: 1, bodyMatch: { kind: 'regex', pattern } }));
    assert.deepEqual([pattern, r.ok, r.reason], [pattern, false, 'error: invalid body_match regex']);
  }
  // Lookbehind and named groups are linear and run.
  assert.equal(specProblem(makeSpec({ bodyMatch: { kind: 'regex', pattern: '(?<=status: )(?<s>ok)' } })), null);
});

test('body_match: a status outside the expected ranges fails before the body is read', async (t) => {
  const { port } = await httpServer(t, (_req, res) => {
    res.statusCode = 500;
    res.end('ok');
  });
  assert.equal((await runProbe(makeSpec({ port, bodyMatch: { kind: 'substring', pattern: 'ok' } }))).reason, 'status 500');
});

const framings = ['content-length', 'chunked', 'close-delimited'] as const;
for (const framing of framings) {
  test(`body_match: the pattern is found in a ${framing} body written in small pieces`, async (t) => {
    const body = `${'x'.repeat(5000)}NEEDLE${'y'.repeat(100)}`;
    const port = await rawServer(t, (socket) => {
      socket.once('data', async () => {
        const head =
          framing === 'content-length' ? `Content-Length: ${Buffer.byteLength(body)}\r\n` : framing === 'chunked' ? 'Transfer-Encoding: chunked\r\n' : '';
        socket.write(`HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n${head}\r\n`);
        for (let i = 0; i < body.length; i += 777) {
          const piece = body.slice(i, i + 777);
          socket.write(framing === 'chunked' ? `${piece.length.toString(16)}\r\n${piece}\r\n` : piece);
          await new Promise((r) => setImmediate(r));
        }
        if (framing === 'chunked') socket.write('0\r\n\r\n');
        if (framing === 'close-delimited') socket.end();
      });
      socket.on('error', () => {});
    });
    const ok = await runProbe(makeSpec({ port, bodyMatch: { kind: 'substring', pattern: 'NEEDLE' } }));
    assert.equal(ok.ok, true, ok.reason);
    const miss = await runProbe(makeSpec({ port, bodyMatch: { kind: 'substring', pattern: 'HAYSTACK' } }));
    assert.equal(miss.reason, 'body mismatch');
  });
}

test('body_match: only the first 64 KiB count: a needle that ends at 64 KiB matches, one just past it does not', async (t) => {
  const pad = (n: number) => 'a'.repeat(n);
  const bodies: Record<string, string> = {
    '/inside': pad(BODY_LIMIT_BYTES - 6) + 'NEEDLE' + pad(1000),
    '/outside': pad(BODY_LIMIT_BYTES - 5) + 'NEEDLE' + pad(1000),
  };
  const { port } = await httpServer(t, (req, res) => res.end(bodies[req.url ?? '']));
  const pattern = { kind: 'substring' as const, pattern: 'NEEDLE' };
  assert.equal((await runProbe(makeSpec({ port, path: '/inside', bodyMatch: pattern }))).ok, true);
  assert.equal((await runProbe(makeSpec({ port, path: '/outside', bodyMatch: pattern }))).reason, 'body mismatch');
});

test('body_match: reading stops at 64 KiB, so an endless body gets a verdict without waiting for the timeout', async (t) => {
  const { port } = await httpServer(t, (_req, res) => {
    res.writeHead(200, { 'Content-Type': 'text/plain' });
    const chunk = Buffer.alloc(16 * 1024, 'z');
    const pump = (): void => {
      while (!res.destroyed && res.write(chunk));
      if (!res.destroyed) res.once('drain', pump);
    };
    res.on('error', () => {});
    pump();
  });
  const r = await runProbe(makeSpec({ port, timeoutMs: 5000, bodyMatch: { kind: 'substring', pattern: 'never' } }));
  assert.equal(r.reason, 'body mismatch');
  assert.ok(r.latencyMs < 4000, `latency ${r.latencyMs}`);
});

// ── failures ──────────────────────────────────────────────────────────────

test('a server that accepts but never answers fails with "timeout" after timeout_ms', async (t) => {
  const port = await rawServer(t, (socket) => socket.on('error', () => {}));
  const r = await runProbe(makeSpec({ port, timeoutMs: 200 }));
  assert.deepEqual([r.ok, r.reason], [false, 'timeout']);
  assert.ok(r.latencyMs >= 190 && r.latencyMs < 1500, `latency ${r.latencyMs}`);
});

test('a checker blocked past timeout_ms does not blame a backend that answered in time: a late timer gives the check the time it lost once', async (t) => {
  // The backend runs in its own process, so it answers while this thread is blocked
  // (a long reload, a GC pause); its reply waits in the socket buffer.
  const { spawn } = await import('node:child_process');
  const child = spawn(process.execPath, ['-e', "const s = require('node:http').createServer((q, r) => r.end('ok')); s.listen(0, '127.0.0.1', () => console.log(s.address().port));"], { stdio: ['ignore', 'pipe', 'inherit'] });
  t.after(() => child.kill());
  const [line] = (await once(child.stdout, 'data')) as [Buffer];
  const spec = makeSpec({ port: Number(String(line).trim()), timeoutMs: 200 });
  assert.equal((await runProbe(spec)).ok, true);
  for (const type of ['http', 'tcp'] as const) {
    const pending = runProbe({ ...spec, type });
    const until = performance.now() + 400;
    while (performance.now() < until);
    const r = await pending;
    assert.deepEqual([type, r.ok, r.reason], [type, true, '']);
  }
  // A backend that stays silent still fails, and within twice its timeout.
  const silent = await rawServer(t, (socket) => socket.on('error', () => {}));
  const pending = runProbe(makeSpec({ port: silent, timeoutMs: 200 }));
  const startMs = performance.now();
  while (performance.now() < startMs + 300);
  const r = await pending;
  assert.deepEqual([r.ok, r.reason], [false, 'timeout']);
  assert.ok(performance.now() - startMs < 700, `bounded: ${performance.now() - startMs} ms`);
});

test('a probe in flight while the checker is blocked (a big publish) passes, and its round trip is flagged stalled: it measured the block, not the server', async (t) => {
  // Another process: it answers during the block (/slow after 30 ms), and the reply waits in the socket.
  const { spawn } = await import('node:child_process');
  const child = spawn(process.execPath, ['-e', "const s = require('node:http').createServer((q, r) => q.url === '/slow' ? setTimeout(() => r.end('ok'), 30) : r.end('ok')); s.listen(0, '127.0.0.1', () => console.log(s.address().port));"], { stdio: ['ignore', 'pipe', 'inherit'] });
  t.after(() => child.kill());
  const [line] = (await once(child.stdout, 'data')) as [Buffer];
  const spec = makeSpec({ port: Number(String(line).trim()), timeoutMs: 5000 });
  const calm = await runProbe(spec);
  assert.deepEqual([calm.ok, calm.stalled], [true, undefined]);
  // The block begins right after the start, or 10 ms into a probe the server answers after 30 ms.
  const cases = [['tcp', '/health', 0], ['http', '/health', 0], ['http', '/slow', 10]] as const;
  for (const [type, path, delayMs] of cases) {
    const pending = runProbe({ ...spec, type, path });
    if (delayMs > 0) await new Promise((resolve) => setTimeout(resolve, delayMs));
    const until = performance.now() + 600;
    while (performance.now() < until);
    const r = await pending;
    assert.deepEqual([type, path, r.ok, r.reason, r.stalled], [type, path, true, '', true]);
    assert.ok(r.latencyMs >= 600 - delayMs, `${type} ${path}: ${r.latencyMs} ms`);
    const after = await runProbe({ ...spec, type, path });
    assert.deepEqual([type, path, after.ok, after.stalled], [type, path, true, undefined]);
  }
});

test('a block of the checker that ends at the deadline (the timer is on time, the sockets unread since the block began) does not fail a backend that answered', async (t) => {
  // The timer is not late here (LATE_TIMER_SHARE does not apply): the connect
  // and the reply waited behind the block, read only after the timer phase.
  const { spawn } = await import('node:child_process');
  const child = spawn(process.execPath, ['-e', "const s = require('node:http').createServer((q, r) => r.end('ok')); s.listen(0, '127.0.0.1', () => console.log(s.address().port));"], { stdio: ['ignore', 'pipe', 'inherit'] });
  t.after(() => child.kill());
  const [line] = (await once(child.stdout, 'data')) as [Buffer];
  const spec = makeSpec({ port: Number(String(line).trim()), timeoutMs: 300 });
  assert.equal((await runProbe(spec)).ok, true);
  const seen: unknown[] = [];
  for (const type of ['http', 'tcp'] as const) {
    for (const blockMs of [300, 320, 350]) {
      const pending = runProbe({ ...spec, type });
      const until = performance.now() + blockMs;
      while (performance.now() < until);
      const r = await pending;
      seen.push([type, blockMs, r.ok, r.reason]);
    }
  }
  assert.deepEqual(seen, [
    ['http', 300, true, ''], ['http', 320, true, ''], ['http', 350, true, ''],
    ['tcp', 300, true, ''], ['tcp', 320, true, ''], ['tcp', 350, true, ''],
  ]);
  // A silent backend still fails after such a block, within twice its timeout.
  const silent = await rawServer(t, (socket) => socket.on('error', () => {}));
  const pending = runProbe(makeSpec({ port: silent, timeoutMs: 300 }));
  const startMs = performance.now();
  while (performance.now() < startMs + 300);
  const r = await pending;
  assert.deepEqual([r.ok, r.reason], [false, 'timeout']);
  assert.ok(performance.now() - startMs < 1000, `bounded: ${performance.now() - startMs} ms`);
});

test('a server that sends headers but never the body fails with "timeout": the timer covers the body too', async (t) => {
  const port = await rawServer(t, (socket) => {
    socket.once('data', () => socket.write('HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial'));
    socket.on('error', () => {});
  });
  const r = await runProbe(makeSpec({ port, timeoutMs: 200, bodyMatch: { kind: 'substring', pattern: 'x' } }));
  assert.equal(r.reason, 'timeout');
});

test('a server that answers only endless 1xx interim responses fails at timeout_ms, and the reason says no final response came', async (t) => {
  const port = await rawServer(t, (s) => {
    s.on('error', () => {});
    const tick = setInterval(() => s.write('HTTP/1.1 100 Continue\r\n\r\n'), 10);
    s.on('close', () => clearInterval(tick));
  });
  const startMs = performance.now();
  const r = await runProbe(makeSpec({ port, timeoutMs: 300 }));
  const tookMs = performance.now() - startMs;
  assert.deepEqual([r.ok, r.reason], [false, 'timeout: no final response (got 100 Continue)']);
  assert.ok(tookMs >= 290 && tookMs < 1000, `bounded by timeout_ms: ${tookMs} ms`);
});

test('a server that sends header lines slowly and forever (under 16 KiB in all) fails at timeout_ms with "timeout"', async (t) => {
  const port = await rawServer(t, (s) => {
    s.on('error', () => {});
    s.write('HTTP/1.1 200 OK\r\n');
    const tick = setInterval(() => s.write('X-Pad: 0123456789\r\n'), 10);
    s.on('close', () => clearInterval(tick));
  });
  const startMs = performance.now();
  const r = await runProbe(makeSpec({ port, timeoutMs: 300, bodyMatch: { kind: 'substring', pattern: 'x' } }));
  const tookMs = performance.now() - startMs;
  assert.deepEqual([r.ok, r.reason], [false, 'timeout']);
  assert.ok(tookMs >= 290 && tookMs < 1000, `bounded by timeout_ms: ${tookMs} ms`);
});

test('a closed port fails with "refused" on IPv4 and IPv6', async () => {
  assert.equal((await runProbe(makeSpec({ port: await closedPort() }))).reason, 'refused');
  assert.equal((await runProbe(makeSpec({ address: '::1', port: await closedPort('::1') }))).reason, 'refused');
});

test('a connection reset by the server fails with "reset"', async (t) => {
  const port = await rawServer(t, (socket) => {
    socket.once('data', () => socket.resetAndDestroy());
    socket.on('error', () => {});
  });
  assert.equal((await runProbe(makeSpec({ port }))).reason, 'reset');
});

test('a server that closes without answering fails with "closed"', async (t) => {
  const port = await rawServer(t, (socket) => {
    socket.once('data', () => socket.end());
    socket.on('error', () => {});
  });
  assert.equal((await runProbe(makeSpec({ port }))).reason, 'closed');
});

test('a body cut short by the server fails with "closed"', async (t) => {
  const port = await rawServer(t, (socket) => {
    socket.once('data', () => socket.end('HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nNEEDLE but short'));
    socket.on('error', () => {});
  });
  assert.equal((await runProbe(makeSpec({ port, bodyMatch: { kind: 'substring', pattern: 'NEEDLE' } }))).reason, 'closed');
});

test('something that is not HTTP fails with "error: bad response"', async (t) => {
  const port = await rawServer(t, (socket) => {
    socket.once('data', () => socket.end('SSH-2.0-OpenSSH_9.6\r\n'));
    socket.on('error', () => {});
  });
  assert.equal((await runProbe(makeSpec({ port }))).reason, 'error: bad response');
});

test('an aborted probe resolves at once with "aborted"', async (t) => {
  const port = await rawServer(t, (socket) => socket.on('error', () => {}));
  const controller = new AbortController();
  const pending = runProbe(makeSpec({ port, timeoutMs: 5000 }), controller.signal);
  controller.abort();
  const r = await pending;
  assert.deepEqual([r.ok, r.reason], [false, 'aborted']);
  assert.ok(r.latencyMs < 1000);
});

test('startProbe reports once through its callback, with its context, and never before it has returned', async (t) => {
  const port = await listen(t, http.createServer((_req, res) => res.end('ok')));
  const specs = [
    makeSpec({ port }), // a real check
    makeSpec({ type: 'none' }), // nothing to probe
    makeSpec({ port, bodyMatch: { kind: 'regex', pattern: '(' } }), // can never pass
    makeSpec({ port: 70_000 }), // net.connect throws
  ];
  const results = await Promise.all(
    specs.map(
      (spec, i) =>
        new Promise<[number, ProbeResult, boolean]>((resolve) => {
          let returned = false;
          let calls = 0;
          startProbe(spec, null, (context: number, r) => {
            calls++;
            setImmediate(() => resolve([context, r, returned && calls === 1]));
          }, i);
          returned = true;
        }),
    ),
  );
  assert.deepEqual(
    results.map(([context, r, inOrder]) => [context, r.ok, r.reason, inOrder]),
    [
      [0, true, '', true],
      [1, true, '', true],
      [2, false, 'error: invalid body_match regex', true],
      [3, false, 'error: ERR_SOCKET_BAD_PORT', true],
    ],
  );
});

test('abort() ends a probe in flight at once with "aborted" and closes its connection', async (t) => {
  const closed = new EventEmitter();
  const port = await rawServer(t, (socket) => {
    socket.on('error', () => {});
    socket.on('close', () => closed.emit('closed'));
    socket.resume(); // read, so the client's FIN is seen
  });
  const gone = once(closed, 'closed');
  const r = await new Promise<ProbeResult>((resolve) => {
    const handle = startProbe(makeSpec({ port, timeoutMs: 5000 }), null, (_: null, result) => resolve(result), null);
    setTimeout(() => handle.abort(), 50);
  });
  assert.deepEqual([r.ok, r.reason], [false, 'aborted']);
  assert.ok(r.latencyMs < 1000);
  await gone;
});

test('a header value with a line break is refused instead of being sent', async () => {
  const r = await runProbe(makeSpec({ port: 1, headers: { 'X-Bad': 'a\r\nInjected: yes' } }));
  assert.deepEqual([r.ok, r.reason], [false, 'error: invalid header "X-Bad"']);
});

test('specProblem names, without connecting, the reason every probe of a spec that cannot be sent would fail with', async () => {
  const bad: [Partial<import('../../src/health/types.ts').CheckSpec>, string][] = [
    [{ bodyMatch: { kind: 'regex', pattern: '(' } }, 'error: invalid body_match regex'],
    [{ path: '/h\u00e9alth' }, 'error: invalid path'],
    [{ headers: { 'Bad Name': 'x' } }, 'error: invalid header "Bad Name"'],
    [{ headers: { 'X-Ctl': '\u0001' } }, 'error: invalid header "X-Ctl"'],
  ];
  for (const [overrides, reason] of bad) {
    const spec = makeSpec({ port: 1, ...overrides });
    assert.equal(specProblem(spec), reason, JSON.stringify(overrides));
    // The same reason the probe itself reports.
    assert.equal((await runProbe(spec)).reason, reason, JSON.stringify(overrides));
  }
  assert.equal(specProblem(makeSpec({ headers: { 'X-Ok': 'yes' }, bodyMatch: { kind: 'regex', pattern: 'ok|ready' } })), null);
  // Path and headers are not sent by a TCP check; a broken regex still is a problem.
  assert.equal(specProblem(makeSpec({ type: 'tcp', path: '/h\u00e9alth' })), null);
});

test('options the socket layer rejects become a failed probe, not an exception', async () => {
  const r = await runProbe(makeSpec({ port: 70000 }));
  assert.deepEqual([r.ok, r.reason], [false, 'error: ERR_SOCKET_BAD_PORT']);
});

const errorCases: { name: string; err: unknown; tls: boolean; reason: string }[] = [
  { name: 'ECONNREFUSED', err: { code: 'ECONNREFUSED' }, tls: false, reason: 'refused' },
  { name: 'ECONNRESET', err: { code: 'ECONNRESET' }, tls: true, reason: 'reset' },
  { name: 'EPIPE', err: { code: 'EPIPE' }, tls: false, reason: 'reset' },
  { name: 'EHOSTUNREACH', err: { code: 'EHOSTUNREACH' }, tls: false, reason: 'unreachable' },
  { name: 'ENETUNREACH', err: { code: 'ENETUNREACH' }, tls: false, reason: 'unreachable' },
  { name: 'ETIMEDOUT', err: { code: 'ETIMEDOUT' }, tls: false, reason: 'timeout' },
  { name: 'a certificate error during the handshake', err: { code: 'CERT_HAS_EXPIRED' }, tls: true, reason: 'tls: CERT_HAS_EXPIRED' },
  { name: 'a TLS name error after the handshake', err: { code: 'ERR_TLS_CERT_ALTNAME_INVALID' }, tls: false, reason: 'tls: ERR_TLS_CERT_ALTNAME_INVALID' },
  { name: 'an unknown code', err: { code: 'EMFILE' }, tls: false, reason: 'error: EMFILE' },
  { name: 'an error without a code', err: new Error('boom'), tls: false, reason: 'error: boom' },
];
for (const c of errorCases) {
  test(`reasonForError maps ${c.name} to "${c.reason}"`, () => {
    assert.equal(reasonForError(c.err, c.tls), c.reason);
  });
}

// ── HTTPS ─────────────────────────────────────────────────────────────────

/** Starts an HTTPS server with the given certificate; returns its port and the SNI name of each connection. */
async function httpsServer(t: import('node:test').TestContext, cert: string, key: string, host = '127.0.0.1') {
  const serverNames: (string | false)[] = [];
  const server = https.createServer({ cert, key }, (_req, res) => res.end('secure ok'));
  server.on('secureConnection', (socket: TLSSocket) => serverNames.push((socket as TLSSocket & { servername: string | false }).servername));
  server.on('tlsClientError', () => {});
  const port = await listen(t, server, host);
  return { port, serverNames };
}

test('https: a self-signed certificate fails with tls_verify true, reason "tls: DEPTH_ZERO_SELF_SIGNED_CERT"', async (t) => {
  const certs = await testCertificates();
  const { port } = await httpsServer(t, certs.selfSignedPem, certs.selfSignedKeyPem);
  const r = await runProbe(makeSpec({ type: 'https', port, tlsVerify: true }));
  assert.equal(r.ok, false);
  assert.match(r.reason, /^tls: /);
  assert.equal(r.reason, 'tls: DEPTH_ZERO_SELF_SIGNED_CERT');
});

test('https: a self-signed certificate passes with tls_verify false', async (t) => {
  const certs = await testCertificates();
  const { port } = await httpsServer(t, certs.selfSignedPem, certs.selfSignedKeyPem);
  const r = await runProbe(makeSpec({ type: 'https', port, tlsVerify: false, bodyMatch: { kind: 'substring', pattern: 'secure ok' } }));
  assert.equal(r.ok, true, r.reason);
});

test('https: a certificate from an untrusted CA fails with a tls reason', async (t) => {
  const certs = await testCertificates();
  const { port } = await httpsServer(t, certs.leafPem, certs.leafKeyPem);
  assert.equal((await runProbe(makeSpec({ type: 'https', port }))).reason, 'tls: UNABLE_TO_VERIFY_LEAF_SIGNATURE');
});

test('https: with the CA trusted, the host name is sent as SNI and verified', async (t) => {
  const certs = await testCertificates();
  const { port, serverNames } = await httpsServer(t, certs.leafPem, certs.leafKeyPem);
  const r = await runProbe(makeSpec({ type: 'https', port, host: 'health.test', ca: certs.caPem }));
  assert.equal(r.ok, true, r.reason);
  assert.deepEqual(serverNames, ['health.test']);
});

test('https: without a host the IP address is verified against the certificate and no SNI is sent', async (t) => {
  const certs = await testCertificates();
  const { port, serverNames } = await httpsServer(t, certs.leafPem, certs.leafKeyPem);
  const r = await runProbe(makeSpec({ type: 'https', port, ca: certs.caPem }));
  assert.equal(r.ok, true, r.reason);
  assert.deepEqual(serverNames, [false]);
});

test('https: a host the certificate does not name fails with "tls: ERR_TLS_CERT_ALTNAME_INVALID"', async (t) => {
  const certs = await testCertificates();
  const { port } = await httpsServer(t, certs.leafPem, certs.leafKeyPem);
  assert.equal((await runProbe(makeSpec({ type: 'https', port, host: 'other.test', ca: certs.caPem }))).reason, 'tls: ERR_TLS_CERT_ALTNAME_INVALID');
});

test('https: an IP-literal host is verified as that IP, not the dialled address', async (t) => {
  const certs = await testCertificates();
  const { port } = await httpsServer(t, certs.leafPem, certs.leafKeyPem);
  // The certificate names 127.0.0.1 and ::1 but not 10.9.9.9.
  assert.equal((await runProbe(makeSpec({ type: 'https', port, host: '::1', ca: certs.caPem }))).ok, true);
  assert.equal((await runProbe(makeSpec({ type: 'https', port, host: '10.9.9.9', ca: certs.caPem }))).reason, 'tls: ERR_TLS_CERT_ALTNAME_INVALID');
});

test('https: an IPv6 server is checked over ::1 with verification', async (t) => {
  const certs = await testCertificates();
  const { port } = await httpsServer(t, certs.leafPem, certs.leafKeyPem, '::1');
  const r = await runProbe(makeSpec({ type: 'https', address: '::1', port, ca: certs.caPem }));
  assert.equal(r.ok, true, r.reason);
});

test('https: a plain HTTP server on the port fails with a tls reason', async (t) => {
  const { port } = await httpServer(t, (_req, res) => res.end());
  assert.match((await runProbe(makeSpec({ type: 'https', port }))).reason, /^tls: /);
});

test('https: a 503 over TLS fails with "status 503"', async (t) => {
  const certs = await testCertificates();
  const server = https.createServer({ cert: certs.selfSignedPem, key: certs.selfSignedKeyPem }, (_req, res) => {
    res.statusCode = 503;
    res.end();
  });
  const port = await listen(t, server);
  assert.equal((await runProbe(makeSpec({ type: 'https', port, tlsVerify: false }))).reason, 'status 503');
});

// ── TCP and none ──────────────────────────────────────────────────────────

test('tcp: a listening port passes, a closed one fails with "refused", on IPv4 and IPv6', async (t) => {
  let accepted = 0;
  const port4 = await rawServer(t, () => accepted++);
  const port6 = await rawServer(t, () => accepted++, '::1');
  assert.equal((await runProbe(makeSpec({ type: 'tcp', port: port4 }))).ok, true);
  assert.equal((await runProbe(makeSpec({ type: 'tcp', address: '::1', port: port6 }))).ok, true);
  assert.equal((await runProbe(makeSpec({ type: 'tcp', port: await closedPort() }))).reason, 'refused');
  assert.equal((await runProbe(makeSpec({ type: 'tcp', address: '::1', port: await closedPort('::1') }))).reason, 'refused');
});

test('tcp: a server that is stopped goes from pass to "refused"', async (t) => {
  const server = net.createServer((s) => s.end());
  const port = await listen(t, server);
  assert.equal((await runProbe(makeSpec({ type: 'tcp', port }))).ok, true);
  server.close();
  await once(server, 'close');
  assert.equal((await runProbe(makeSpec({ type: 'tcp', port }))).reason, 'refused');
});

test('none: always passes with latency 0 and opens no connection', async () => {
  assert.deepEqual(await runProbe(makeSpec({ type: 'none', port: 1 })), { ok: true, latencyMs: 0, reason: '' });
});

test('https: a fresh connection resumes the TLS session of the last check; a failed check starts over with a full handshake', async (t) => {
  const certs = await testCertificates();
  let status = 200;
  const server = https.createServer({ cert: certs.leafPem, key: certs.leafKeyPem }, (_req, res) => {
    res.writeHead(status);
    res.end('secure ok');
  });
  const reused: boolean[] = [];
  server.on('secureConnection', (socket: TLSSocket) => socket.once('data', () => reused.push(socket.isSessionReused())));
  const port = await listen(t, server);
  // Verified against the test CA, so only sessions of verified connections are kept.
  const spec = makeSpec({ type: 'https', port, host: 'health.test', tlsVerify: true, ca: certs.caPem });
  for (let i = 0; i < 3; i++) {
    const r = await runProbe(spec);
    assert.equal(r.ok, true, r.reason);
  }
  assert.deepEqual(reused, [false, true, true]);
  status = 503;
  assert.equal((await runProbe(spec)).ok, false);
  status = 200;
  assert.equal((await runProbe(spec)).ok, true);
  // The failed check was resumed; the one after it did the full handshake again.
  assert.deepEqual(reused, [false, true, true, true, false]);
});

test('https: a resumed session does not outlive the certificate it was verified with: past its notAfter the check does a full handshake and fails with "tls: CERT_HAS_EXPIRED"', async (t) => {
  const certs = await testCertificates();
  // Valid from a minute ago until 3 s from now (whole seconds).
  const notAfterMs = Math.floor(Date.now() / 1000) * 1000 + 3000;
  const short = await leafCertificate(new Date(Date.now() - 60_000), new Date(notAfterMs));
  const server = https.createServer({ cert: short.certPem, key: short.keyPem }, (_req, res) => res.end('secure ok'));
  const reused: boolean[] = [];
  server.on('secureConnection', (socket: TLSSocket) => socket.once('data', () => reused.push(socket.isSessionReused())));
  const port = await listen(t, server);
  const spec = makeSpec({ type: 'https', port, host: 'health.test', tlsVerify: true, ca: certs.caPem });
  for (let i = 0; i < 2; i++) assert.equal((await runProbe(spec)).ok, true);
  assert.deepEqual(reused, [false, true]);
  // The server keeps accepting the session; the certificate it stands for expires.
  await new Promise((resolve) => setTimeout(resolve, notAfterMs - Date.now() + 1100));
  const expired = await runProbe(spec);
  assert.deepEqual([expired.ok, expired.reason], [false, 'tls: CERT_HAS_EXPIRED']);
  // The failed check reached no request (the handshake failed); a renewed certificate passes on a full handshake.
  assert.deepEqual(reused, [false, true]);
  const renewed = await leafCertificate(new Date(Date.now() - 60_000), new Date(Date.now() + 86400_000));
  server.setSecureContext({ cert: renewed.certPem, key: renewed.keyPem });
  for (let i = 0; i < 2; i++) assert.equal((await runProbe(spec)).ok, true);
  assert.deepEqual(reused, [false, true, false, true]);
});

test('https: with tls_verify false a session is resumed whatever the certificate says (nothing verified, nothing to expire)', async (t) => {
  const notAfterMs = Math.floor(Date.now() / 1000) * 1000 + 2000;
  const short = await leafCertificate(new Date(Date.now() - 60_000), new Date(notAfterMs));
  const server = https.createServer({ cert: short.certPem, key: short.keyPem }, (_req, res) => res.end('ok'));
  const reused: boolean[] = [];
  server.on('secureConnection', (socket: TLSSocket) => socket.once('data', () => reused.push(socket.isSessionReused())));
  const port = await listen(t, server);
  const spec = makeSpec({ type: 'https', port, tlsVerify: false });
  assert.equal((await runProbe(spec)).ok, true);
  await new Promise((resolve) => setTimeout(resolve, notAfterMs - Date.now() + 1100));
  assert.equal((await runProbe(spec)).ok, true);
  assert.deepEqual(reused, [false, true]);
});
