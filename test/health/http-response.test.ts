import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  BODY_LIMIT_BYTES, ERR_BAD_RESPONSE, ERR_CLOSED, ERR_HEAD_TOO_LARGE, MAX_HEAD_BYTES, READ_DONE, READ_MORE, ResponseReader,
} from '../../src/health/http-response.ts';

interface Outcome {
  /** READ_DONE, or a negative ERR_* (from feed or from end()). */
  result: number;
  status: number;
  body: string;
}

/** Feeds `wire` in pieces cut at `cuts`, then end() if the reader still wants more and `eof` is set. */
function read(wire: Buffer, needBody: boolean, cuts: number[], eof: boolean): Outcome {
  const reader = new ResponseReader(needBody);
  const points = [0, ...cuts.filter((c) => c > 0 && c < wire.length), wire.length];
  // Every piece is fed from a scratch buffer that is overwritten afterwards, as the shared onread buffer is.
  const scratch = Buffer.alloc(wire.length + 16);
  for (let i = 0; i + 1 < points.length; i++) {
    const len = points[i + 1] - points[i];
    wire.copy(scratch, 3, points[i], points[i + 1]);
    const r = reader.feed(scratch, 3, 3 + len);
    scratch.fill(0x21);
    if (r !== READ_MORE) return { result: r, status: reader.status, body: r === READ_DONE ? reader.bodyText() : '' };
  }
  if (!eof) return { result: READ_MORE, status: reader.status, body: '' };
  const r = reader.end();
  return { result: r, status: reader.status, body: r === READ_DONE ? reader.bodyText() : '' };
}

const crlf = (lines: string[]): Buffer => Buffer.from(lines.join('\r\n'), 'latin1');

const cases: { name: string; wire: Buffer; needBody: boolean; eof: boolean; expect: Outcome }[] = [
  {
    name: 'a status-only read is done at the status line',
    wire: crlf(['HTTP/1.1 200 OK', 'Content-Length: 5', '', 'hello']),
    needBody: false,
    eof: false,
    expect: { result: READ_DONE, status: 200, body: '' },
  },
  {
    name: 'a status line without a reason phrase is accepted',
    wire: crlf(['HTTP/1.1 204', '', '']),
    needBody: false,
    eof: false,
    expect: { result: READ_DONE, status: 204, body: '' },
  },
  {
    name: 'HTTP/1.0 is accepted',
    wire: crlf(['HTTP/1.0 503 Service Unavailable', '', '']),
    needBody: false,
    eof: false,
    expect: { result: READ_DONE, status: 503, body: '' },
  },
  {
    name: 'a Content-Length body is read to its length, ignoring bytes after it',
    wire: crlf(['HTTP/1.1 200 OK', 'content-length: 5', '', 'helloEXTRA']),
    needBody: true,
    eof: false,
    expect: { result: READ_DONE, status: 200, body: 'hello' },
  },
  {
    name: 'Content-Length 0 completes at the end of the head',
    wire: crlf(['HTTP/1.1 200 OK', 'Content-Length: 0', '', '']),
    needBody: true,
    eof: false,
    expect: { result: READ_DONE, status: 200, body: '' },
  },
  {
    name: 'a chunked body is decoded, with extensions and trailers',
    wire: crlf(['HTTP/1.1 200 OK', 'Transfer-Encoding: chunked', '', '5;name=value', 'hello', '7', ', world', '0', 'X-Trailer: 1', '', '']),
    needBody: true,
    eof: false,
    expect: { result: READ_DONE, status: 200, body: 'hello, world' },
  },
  {
    name: 'chunk sizes are hexadecimal, in either case',
    wire: crlf(['HTTP/1.1 200 OK', 'Transfer-Encoding: gzip, CHUNKED', '', 'A', '0123456789', 'b', 'abcdefghijk', '0', '', '']),
    needBody: true,
    eof: false,
    expect: { result: READ_DONE, status: 200, body: '0123456789abcdefghijk' },
  },
  {
    name: 'Transfer-Encoding chunked wins over Content-Length',
    wire: crlf(['HTTP/1.1 200 OK', 'Content-Length: 2', 'Transfer-Encoding: chunked', '', '3', 'abc', '0', '', '']),
    needBody: true,
    eof: false,
    expect: { result: READ_DONE, status: 200, body: 'abc' },
  },
  {
    name: 'a body without length or chunking runs to the end of the connection',
    wire: crlf(['HTTP/1.1 200 OK', 'Content-Type: text/plain', '', 'until close']),
    needBody: true,
    eof: true,
    expect: { result: READ_DONE, status: 200, body: 'until close' },
  },
  {
    name: 'a final coding other than chunked is close-delimited',
    wire: crlf(['HTTP/1.1 200 OK', 'Transfer-Encoding: chunked, gzip', '', '3', 'abc']),
    needBody: true,
    eof: true,
    expect: { result: READ_DONE, status: 200, body: '3\r\nabc' },
  },
  {
    name: '100 Continue and 103 Early Hints are skipped before the real response',
    wire: crlf(['HTTP/1.1 100 Continue', '', 'HTTP/1.1 103 Early Hints', 'Link: </a.css>', '', 'HTTP/1.1 404 Not Found', 'Content-Length: 3', '', 'nop']),
    needBody: true,
    eof: false,
    expect: { result: READ_DONE, status: 404, body: 'nop' },
  },
  {
    name: 'a 1xx is not mistaken for the final status in a status-only read',
    wire: crlf(['HTTP/1.1 100 Continue', '', 'HTTP/1.1 502 Bad Gateway', '', '']),
    needBody: false,
    eof: false,
    expect: { result: READ_DONE, status: 502, body: '' },
  },
  {
    name: '204 has no body even with a Content-Length',
    wire: crlf(['HTTP/1.1 204 No Content', 'Content-Length: 10', '', '']),
    needBody: true,
    eof: false,
    expect: { result: READ_DONE, status: 204, body: '' },
  },
  {
    name: '304 has no body',
    wire: crlf(['HTTP/1.1 304 Not Modified', '', '']),
    needBody: true,
    eof: false,
    expect: { result: READ_DONE, status: 304, body: '' },
  },
  {
    name: 'bare LF line endings are tolerated',
    wire: Buffer.from('HTTP/1.1 200 OK\nContent-Length: 2\n\nok'),
    needBody: true,
    eof: false,
    expect: { result: READ_DONE, status: 200, body: 'ok' },
  },
  {
    name: 'multi-byte UTF-8 split across reads is decoded whole',
    wire: Buffer.from('HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nprêt ✓', 'utf8'),
    needBody: true,
    eof: false,
    expect: { result: READ_DONE, status: 200, body: 'prêt ✓' },
  },
  {
    name: 'a status line that is not HTTP is a bad response',
    wire: Buffer.from('SSH-2.0-OpenSSH_9.6\r\n'),
    needBody: false,
    eof: false,
    expect: { result: ERR_BAD_RESPONSE, status: 0, body: '' },
  },
  {
    // docs/health-checks.md: "error: bad response" is "the reply was not HTTP/1.x".
    name: 'a major version other than 1 is a bad response',
    wire: crlf(['HTTP/2.0 200 OK', '', '']),
    needBody: false,
    eof: false,
    expect: { result: ERR_BAD_RESPONSE, status: 0, body: '' },
  },
  {
    name: 'HTTP/0.9-style version 0.9 is a bad response',
    wire: crlf(['HTTP/0.9 200 OK', '', '']),
    needBody: false,
    eof: false,
    expect: { result: ERR_BAD_RESPONSE, status: 0, body: '' },
  },
  {
    name: 'a two-digit status is a bad response',
    wire: Buffer.from('HTTP/1.1 20 OK\r\n\r\n'),
    needBody: false,
    eof: false,
    expect: { result: ERR_BAD_RESPONSE, status: 0, body: '' },
  },
  {
    name: 'a status glued to its reason is a bad response',
    wire: Buffer.from('HTTP/1.1 200OK\r\n\r\n'),
    needBody: false,
    eof: false,
    expect: { result: ERR_BAD_RESPONSE, status: 0, body: '' },
  },
  {
    name: 'a header line without a colon is a bad response',
    wire: crlf(['HTTP/1.1 200 OK', 'NoColonHere', '', '']),
    needBody: true,
    eof: false,
    expect: { result: ERR_BAD_RESPONSE, status: 200, body: '' },
  },
  {
    name: 'two different Content-Length values are a bad response',
    wire: crlf(['HTTP/1.1 200 OK', 'Content-Length: 2', 'Content-Length: 3', '', 'abc']),
    needBody: true,
    eof: false,
    expect: { result: ERR_BAD_RESPONSE, status: 200, body: '' },
  },
  {
    name: 'a negative Content-Length is a bad response',
    wire: crlf(['HTTP/1.1 200 OK', 'Content-Length: -1', '', '']),
    needBody: true,
    eof: false,
    expect: { result: ERR_BAD_RESPONSE, status: 200, body: '' },
  },
  {
    name: 'a chunk size that is not hexadecimal is a bad response',
    wire: crlf(['HTTP/1.1 200 OK', 'Transfer-Encoding: chunked', '', 'zz', 'abc', '0', '', '']),
    needBody: true,
    eof: false,
    expect: { result: ERR_BAD_RESPONSE, status: 200, body: '' },
  },
  {
    name: 'chunk data longer than its size is a bad response',
    wire: crlf(['HTTP/1.1 200 OK', 'Transfer-Encoding: chunked', '', '2', 'abc', '0', '', '']),
    needBody: true,
    eof: false,
    expect: { result: ERR_BAD_RESPONSE, status: 200, body: '' },
  },
  {
    name: 'a connection closed inside the head is ERR_CLOSED',
    wire: Buffer.from('HTTP/1.1 200 OK\r\nContent-Le'),
    needBody: true,
    eof: true,
    expect: { result: ERR_CLOSED, status: 200, body: '' },
  },
  {
    name: 'a connection closed inside a Content-Length body is ERR_CLOSED',
    wire: crlf(['HTTP/1.1 200 OK', 'Content-Length: 10', '', 'abc']),
    needBody: true,
    eof: true,
    expect: { result: ERR_CLOSED, status: 200, body: '' },
  },
  {
    name: 'a connection closed inside a chunked body is ERR_CLOSED',
    wire: crlf(['HTTP/1.1 200 OK', 'Transfer-Encoding: chunked', '', '5', 'ab']),
    needBody: true,
    eof: true,
    expect: { result: ERR_CLOSED, status: 200, body: '' },
  },
  {
    name: 'a connection closed before any byte is ERR_CLOSED',
    wire: Buffer.alloc(0),
    needBody: false,
    eof: true,
    expect: { result: ERR_CLOSED, status: 0, body: '' },
  },
];

for (const c of cases) {
  test(`reader: ${c.name}, whole and split at every byte`, () => {
    assert.deepEqual(read(c.wire, c.needBody, [], c.eof), c.expect, 'fed in one piece');
    for (let cut = 1; cut < c.wire.length; cut++) {
      assert.deepEqual(read(c.wire, c.needBody, [cut], c.eof), c.expect, `split at byte ${cut}`);
    }
    const everyByte = Array.from({ length: c.wire.length }, (_, i) => i);
    assert.deepEqual(read(c.wire, c.needBody, everyByte, c.eof), c.expect, 'fed one byte at a time');
  });
}

test('reader: a body is kept up to 64 KiB and the read is done at the limit, before the body ends', () => {
  const body = 'b'.repeat(BODY_LIMIT_BYTES + 5000);
  for (const wire of [
    crlf(['HTTP/1.1 200 OK', `Content-Length: ${body.length}`, '', body]),
    crlf(['HTTP/1.1 200 OK', 'Transfer-Encoding: chunked', '', (40000).toString(16), body.slice(0, 40000), (body.length - 40000).toString(16), body.slice(40000), '0', '', '']),
    crlf(['HTTP/1.1 200 OK', '', body]),
  ]) {
    // Feed only up to 100 bytes past the limit: the reader must not need the rest.
    const headEnd = wire.indexOf('bbbb');
    const partial = wire.subarray(0, headEnd + BODY_LIMIT_BYTES + 100);
    const out = read(partial, true, [1000, 30000, 50000], false);
    assert.equal(out.result, READ_DONE);
    assert.equal(out.body.length, BODY_LIMIT_BYTES);
  }
});

test('reader: a head larger than 16 KiB is ERR_HEAD_TOO_LARGE, fed whole or in pieces', () => {
  const wire = crlf(['HTTP/1.1 200 OK', `X-Big: ${'h'.repeat(MAX_HEAD_BYTES)}`, '', '']);
  assert.equal(read(wire, true, [], false).result, ERR_HEAD_TOO_LARGE);
  assert.equal(read(wire, true, [100, 5000, 12000], false).result, ERR_HEAD_TOO_LARGE);
  const manyLines = crlf(['HTTP/1.1 200 OK', ...Array.from({ length: 2000 }, (_, i) => `X-${i}: 123456`), '', '']);
  assert.equal(read(manyLines, true, [], false).result, ERR_HEAD_TOO_LARGE);
});

test('reader: feed after the response is complete keeps returning READ_DONE', () => {
  const reader = new ResponseReader(false);
  const wire = crlf(['HTTP/1.1 200 OK', '', '']);
  assert.equal(reader.feed(wire, 0, wire.length), READ_DONE);
  assert.equal(reader.feed(wire, 0, wire.length), READ_DONE);
  assert.equal(reader.end(), READ_DONE);
});

/** Feeds `wire` with keepAlive set, in pieces cut at `cuts`; returns the result, the status and `reusable`. */
function readKept(wire: Buffer, needBody: boolean, cuts: number[]): { result: number; status: number; reusable: boolean; body: string } {
  const reader = new ResponseReader(needBody, true);
  const points = [0, ...cuts.filter((c) => c > 0 && c < wire.length), wire.length];
  let r = READ_MORE;
  for (let i = 0; i + 1 < points.length && r === READ_MORE; i++) r = reader.feed(wire, points[i], points[i + 1]);
  return { result: r, status: reader.status, reusable: reader.reusable, body: r === READ_DONE && needBody ? reader.bodyText() : '' };
}

const keptCases: { name: string; wire: Buffer; needBody: boolean; expect: { result: number; status: number; reusable: boolean; body: string } }[] = [
  {
    name: 'a Content-Length body read to its end keeps the connection, without body_match too',
    wire: crlf(['HTTP/1.1 200 OK', 'Content-Length: 5', 'Keep-Alive: timeout=5', '', 'hello']),
    needBody: false,
    expect: { result: READ_DONE, status: 200, reusable: true, body: '' },
  },
  {
    name: 'a chunked body with trailers read to the final empty line keeps the connection',
    wire: crlf(['HTTP/1.1 200 OK', 'Transfer-Encoding: chunked', '', '5', 'hello', '0', 'X-Trailer: 1', '', '']),
    needBody: true,
    expect: { result: READ_DONE, status: 200, reusable: true, body: 'hello' },
  },
  {
    name: 'a 204 keeps the connection',
    wire: crlf(['HTTP/1.1 204 No Content', '', '']),
    needBody: false,
    expect: { result: READ_DONE, status: 204, reusable: true, body: '' },
  },
  {
    name: 'Connection: close (any case, among other tokens) ends the connection',
    wire: crlf(['HTTP/1.1 200 OK', 'Content-Length: 2', 'connection: Upgrade, CLOSE', '', 'ok']),
    needBody: true,
    expect: { result: READ_DONE, status: 200, reusable: false, body: 'ok' },
  },
  {
    name: 'HTTP/1.0 ends the connection',
    wire: crlf(['HTTP/1.0 200 OK', 'Content-Length: 2', '', 'ok']),
    needBody: false,
    expect: { result: READ_DONE, status: 200, reusable: false, body: '' },
  },
  {
    name: 'a close-delimited body without body_match is done at the end of the head, not kept',
    wire: crlf(['HTTP/1.1 200 OK', 'Content-Type: text/plain', '', 'and more to come']),
    needBody: false,
    expect: { result: READ_DONE, status: 200, reusable: false, body: '' },
  },
  {
    name: 'a Transfer-Encoding other than chunked beside a Content-Length is close-delimited, not kept',
    wire: crlf(['HTTP/1.1 200 OK', 'Transfer-Encoding: gzip', 'Content-Length: 2', '', 'ok']),
    needBody: false,
    expect: { result: READ_DONE, status: 200, reusable: false, body: '' },
  },
  {
    name: 'a Content-Length over the body limit is not read, not kept',
    wire: crlf(['HTTP/1.1 200 OK', `Content-Length: ${BODY_LIMIT_BYTES + 1}`, '', 'bbb']),
    needBody: false,
    expect: { result: READ_DONE, status: 200, reusable: false, body: '' },
  },
];

for (const c of keptCases) {
  test(`reader keepAlive: ${c.name}, whole and split at every byte`, () => {
    assert.deepEqual(readKept(c.wire, c.needBody, []), c.expect, 'fed in one piece');
    const everyByte = Array.from({ length: c.wire.length }, (_, i) => i);
    assert.deepEqual(readKept(c.wire, c.needBody, everyByte), c.expect, 'fed one byte at a time');
    for (let cut = 1; cut < c.wire.length; cut++) assert.deepEqual(readKept(c.wire, c.needBody, [cut]), c.expect, `split at byte ${cut}`);
  });
}

test('reader keepAlive: bytes after the end of the message in the same read make it not reusable', () => {
  const wire = crlf(['HTTP/1.1 200 OK', 'Content-Length: 2', '', 'okHTTP/1.1 200 OK']);
  assert.deepEqual(readKept(wire, false, []), { result: READ_DONE, status: 200, reusable: false, body: '' });
  const chunked = crlf(['HTTP/1.1 200 OK', 'Transfer-Encoding: chunked', '', '2', 'ok', '0', '', 'x']);
  assert.deepEqual(readKept(chunked, false, []), { result: READ_DONE, status: 200, reusable: false, body: '' });
});

test('reader keepAlive: a chunked body past the limit is done at the limit and not reusable', () => {
  const body = 'b'.repeat(BODY_LIMIT_BYTES + 10);
  const wire = crlf(['HTTP/1.1 200 OK', 'Transfer-Encoding: chunked', '', body.length.toString(16), body, '0', '', '']);
  assert.deepEqual(readKept(wire, false, []), { result: READ_DONE, status: 200, reusable: false, body: '' });
});

test('reader keepAlive: trailers longer than 16 KiB are ERR_HEAD_TOO_LARGE', () => {
  const wire = crlf(['HTTP/1.1 200 OK', 'Transfer-Encoding: chunked', '', '0', ...Array.from({ length: 2000 }, (_, i) => `X-${i}: 123456`), '', '']);
  assert.equal(readKept(wire, false, []).result, ERR_HEAD_TOO_LARGE);
});

test('reader: without keepAlive a response is never reusable', () => {
  const reader = new ResponseReader(true);
  const wire = crlf(['HTTP/1.1 200 OK', 'Content-Length: 2', '', 'ok']);
  assert.equal(reader.feed(wire, 0, wire.length), READ_DONE);
  assert.equal(reader.reusable, false);
});
