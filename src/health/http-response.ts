// Main thread, warm path. An incremental HTTP/1.1 response reader for health
// probes: the status line, the few headers that frame the body
// (Content-Length, Transfer-Encoding: chunked, else close-delimited) or decide
// whether the connection can be kept (Connection), and at most
// BODY_LIMIT_BYTES of body for body_match. It copies out of the caller's
// buffer, so the caller may reuse that buffer as soon as feed() returns.
// Header names and values are compared as bytes: no string per header line.
//
// Why not node:http: one probe through http.request allocates a ClientRequest,
// an IncomingMessage, header objects and stream state; a raw socket with this
// reader does the same check with a fraction of the garbage. See
// docs/health-checks.md ("Scale") for the measurement.

/** Bytes of the response body kept for body_match; reading stops here. */
export const BODY_LIMIT_BYTES = 64 * 1024;
/** Most bytes of status line plus headers (per response, 1xx included) before the response is rejected. */
export const MAX_HEAD_BYTES = 16 * 1024;

/** feed() result: the response is not complete yet; feed more bytes. */
export const READ_MORE = 0;
/** feed()/end() result: the response is complete (status-only: its final status line), or its body reached the limit. */
export const READ_DONE = 1;
/** Negative result: a malformed status line, header line or chunk framing. */
export const ERR_BAD_RESPONSE = -1;
/** Negative result: status line plus headers exceed MAX_HEAD_BYTES (or one line does). */
export const ERR_HEAD_TOO_LARGE = -2;
/** Negative result of end(): the connection ended before the response was complete. */
export const ERR_CLOSED = -3;

/** Returns the probe reason of a negative feed()/end() result. */
export function readErrorReason(code: number): string {
  if (code === ERR_HEAD_TOO_LARGE) return 'error: head too large';
  if (code === ERR_CLOSED) return 'closed';
  return 'error: bad response';
}

const LF = 0x0a;
const CR = 0x0d;

// Parser phases.
const STATUS = 0;
const HEADERS = 1;
const BODY_LENGTH = 2;
const BODY_CLOSE = 3;
const CHUNK_SIZE = 4;
const CHUNK_DATA = 5;
const CHUNK_END = 6;
const TRAILERS = 7;
const DONE = 8;

// Lower-case header names the reader acts on, and the tokens it looks for.
const CONTENT_LENGTH = Buffer.from('content-length', 'latin1');
const TRANSFER_ENCODING = Buffer.from('transfer-encoding', 'latin1');
const CONNECTION = Buffer.from('connection', 'latin1');
const CHUNKED = Buffer.from('chunked', 'latin1');
const CLOSE = Buffer.from('close', 'latin1');

/**
 * Reads one HTTP/1.1 response from successive chunks. With `needBody` and
 * `keepAlive` false it is done as soon as a final (non-1xx) status line has
 * been read; with `needBody` true it also frames the body and keeps its first
 * BODY_LIMIT_BYTES. With `keepAlive` true it reads the whole message (body and
 * chunked trailers included, bodies up to BODY_LIMIT_BYTES) when the
 * connection could be kept, and says so in `reusable`; a response that ends
 * the connection anyway is done at the end of its head unless `needBody`.
 * Malformed input gives a negative result, never a throw.
 */
export class ResponseReader {
  /** The final status code, 0 until its status line has been read (1xx interim responses are skipped). */
  status = 0;
  /** The status of the last 1xx interim response read, 0 if none: a timeout then says no final response came after it. */
  interimStatus = 0;
  readonly needBody: boolean;
  readonly keepAlive: boolean;
  #phase = STATUS;
  #interim = false;
  #headBytes = 0;
  #carry: Buffer | null = null;
  #contentLength = -1;
  #transferEncoding = false;
  #chunked = false;
  #http11 = false;
  #connectionClose = false;
  /** HTTP/1.1, no Connection: close, and framed by length or chunks: the connection survives the message. */
  #persistent = false;
  /** The whole message was read (not cut at the body limit or decided early). */
  #complete = false;
  /** Bytes followed the end of the message in the same feed(). */
  #trailing = false;
  #remaining = 0;
  #chunks: Buffer[] = [];
  #bodyBytes = 0;

  constructor(needBody: boolean, keepAlive = false) {
    this.needBody = needBody;
    this.keepAlive = keepAlive;
  }

  /**
   * True once READ_DONE when the connection may carry the next request: read
   * with `keepAlive`, HTTP/1.1 without `Connection: close`, framed by
   * Content-Length or chunked (or bodiless), read to its very end, and
   * nothing after it.
   */
  get reusable(): boolean {
    return this.#phase === DONE && this.#persistent && this.#complete && !this.#trailing;
  }

  /** Consumes buf[off, end). Returns READ_MORE, READ_DONE or a negative ERR_*. */
  feed(buf: Buffer, off: number, end: number): number {
    if (this.#phase === DONE) return READ_DONE;
    if (this.#carry !== null) {
      // A line was split across reads: join it with the new bytes (rare, and bounded by MAX_HEAD_BYTES).
      const joined = Buffer.concat([this.#carry, buf.subarray(off, end)]);
      this.#carry = null;
      buf = joined;
      off = 0;
      end = joined.length;
    }
    while (off < end) {
      switch (this.#phase) {
        case STATUS:
        case HEADERS:
        case CHUNK_SIZE:
        case CHUNK_END:
        case TRAILERS: {
          // Fail fast on something that is not HTTP at all (a TLS server spoken to in clear text).
          if (this.#phase === STATUS && !startsLikeHttp(buf, off, end)) return ERR_BAD_RESPONSE;
          const lf = buf.indexOf(LF, off);
          if (lf < 0 || lf >= end) return this.#keep(buf, off, end);
          const lineEnd = lf > off && buf[lf - 1] === CR ? lf - 1 : lf;
          const r = this.#line(buf, off, lineEnd, lf + 1 - off);
          if (r !== READ_MORE) {
            this.#trailing = lf + 1 < end;
            return r;
          }
          off = lf + 1;
          break;
        }
        case BODY_LENGTH: {
          const n = Math.min(this.#remaining, end - off);
          this.#remaining -= n;
          if (this.#remaining === 0) {
            this.#append(buf, off, off + n);
            this.#trailing = off + n < end;
            return this.#finish(true);
          }
          if (this.#append(buf, off, off + n)) return this.#finish(false);
          off += n;
          break;
        }
        case CHUNK_DATA: {
          const n = Math.min(this.#remaining, end - off);
          this.#remaining -= n;
          if (this.#append(buf, off, off + n)) return this.#finish(false);
          if (this.#remaining === 0) this.#phase = CHUNK_END;
          off += n;
          break;
        }
        case BODY_CLOSE:
          if (this.#append(buf, off, end)) return this.#finish(false);
          off = end;
          break;
        default:
          return READ_DONE;
      }
    }
    return READ_MORE;
  }

  /** Reports the end of the stream: completes a close-delimited body; anything else unfinished is ERR_CLOSED. */
  end(): number {
    if (this.#phase === DONE) return READ_DONE;
    // A close-delimited body ends here; the connection is gone, so it is not `reusable` either way.
    if (this.#phase === BODY_CLOSE) return this.#finish(true);
    return ERR_CLOSED;
  }

  /** Returns the first BODY_LIMIT_BYTES of the body as UTF-8 text (valid once READ_DONE). */
  bodyText(): string {
    return Buffer.concat(this.#chunks, this.#bodyBytes).toString('utf8');
  }

  /** Ends the read; `complete` says the whole message was consumed (see `reusable`). */
  #finish(complete: boolean): number {
    this.#phase = DONE;
    this.#complete = complete;
    return READ_DONE;
  }

  /** Keeps an incomplete line for the next feed(); the head and chunk-size lines are bounded. */
  #keep(buf: Buffer, off: number, end: number): number {
    if (end - off > MAX_HEAD_BYTES) return ERR_HEAD_TOO_LARGE;
    this.#carry = Buffer.from(buf.subarray(off, end));
    return READ_MORE;
  }

  /** Counts body bytes and, with `needBody`, copies them; returns true once BODY_LIMIT_BYTES are read. */
  #append(buf: Buffer, start: number, end: number): boolean {
    const n = Math.min(end - start, BODY_LIMIT_BYTES - this.#bodyBytes);
    if (n > 0) {
      // Copy: the caller may reuse `buf` (a socket's shared onread buffer) after feed() returns.
      if (this.needBody) this.#chunks.push(Buffer.from(buf.subarray(start, start + n)));
      this.#bodyBytes += n;
    }
    return this.#bodyBytes >= BODY_LIMIT_BYTES;
  }

  /** Handles one line [start, end) of the head or of the chunk framing; `rawLen` includes its line ending. */
  #line(buf: Buffer, start: number, end: number, rawLen: number): number {
    switch (this.#phase) {
      case STATUS:
        this.#headBytes = rawLen;
        return this.#statusLine(buf, start, end);
      case HEADERS:
        this.#headBytes += rawLen;
        if (this.#headBytes > MAX_HEAD_BYTES) return ERR_HEAD_TOO_LARGE;
        if (end === start) return this.#endOfHead();
        return this.#headerLine(buf, start, end);
      case CHUNK_SIZE:
        return this.#chunkSizeLine(buf.toString('latin1', start, end));
      case TRAILERS:
        // RFC 9112 §7.1.2: trailer fields end with an empty line; read (and bound) them only to reach the message end.
        if (end === start) return this.#finish(true);
        this.#headBytes += rawLen;
        if (this.#headBytes > MAX_HEAD_BYTES) return ERR_HEAD_TOO_LARGE;
        return READ_MORE;
      default:
        // CHUNK_END: RFC 9112 §7.1: chunk data is followed by CRLF, nothing else.
        if (end !== start) return ERR_BAD_RESPONSE;
        this.#phase = CHUNK_SIZE;
        return READ_MORE;
    }
  }

  /** Parses "HTTP/1.x NNN reason" without building a string (the hot case: status-only checks). */
  #statusLine(buf: Buffer, start: number, end: number): number {
    // "HTTP/1." digit SP 3DIGIT, then SP reason or the end of the line (RFC 9112 §4).
    if (end - start < 12) return ERR_BAD_RESPONSE;
    if (buf[start] !== 0x48 || buf[start + 1] !== 0x54 || buf[start + 2] !== 0x54 || buf[start + 3] !== 0x50 || buf[start + 4] !== 0x2f) {
      return ERR_BAD_RESPONSE;
    }
    // Major version 1 only: a reply that is not HTTP/1.x ("HTTP/2.0 200", "HTTP/0.9 200") is no answer to an HTTP/1.1 GET.
    if (buf[start + 5] !== 0x31 || buf[start + 6] !== 0x2e || !isDigit(buf[start + 7]) || buf[start + 8] !== 0x20) return ERR_BAD_RESPONSE;
    const d0 = buf[start + 9];
    const d1 = buf[start + 10];
    const d2 = buf[start + 11];
    if (!isDigit(d0) || !isDigit(d1) || !isDigit(d2)) return ERR_BAD_RESPONSE;
    if (end - start > 12 && buf[start + 12] !== 0x20) return ERR_BAD_RESPONSE;
    const status = (d0 - 0x30) * 100 + (d1 - 0x30) * 10 + (d2 - 0x30);
    if (status < 100) return ERR_BAD_RESPONSE;
    this.#phase = HEADERS;
    // 1xx responses (100 Continue, 103 Early Hints) precede the real one: skip their head.
    this.#interim = status < 200;
    if (this.#interim) {
      this.interimStatus = status;
      return READ_MORE;
    }
    this.status = status;
    // RFC 9112 §9.3: persistence is the default from HTTP/1.1 on; an HTTP/1.0 server closes unless told otherwise.
    this.#http11 = buf[start + 7] >= 0x31;
    if (!this.needBody && !this.keepAlive) return this.#finish(false);
    return READ_MORE;
  }

  /** Handles one header line [start, end); only Content-Length, Transfer-Encoding and Connection matter. */
  #headerLine(buf: Buffer, start: number, end: number): number {
    const colon = buf.indexOf(0x3a, start);
    if (colon <= start || colon >= end) return ERR_BAD_RESPONSE;
    if (this.#interim) return READ_MORE;
    if (nameIs(buf, start, colon, CONTENT_LENGTH)) {
      const n = parseLength(buf, colon + 1, end);
      if (n < 0) return ERR_BAD_RESPONSE;
      // RFC 9112 §6.3: differing Content-Length values make the message invalid.
      if (this.#contentLength >= 0 && this.#contentLength !== n) return ERR_BAD_RESPONSE;
      this.#contentLength = n;
    } else if (nameIs(buf, start, colon, TRANSFER_ENCODING)) {
      // RFC 9112 §6.3: chunked must be the final coding; a response whose final coding is
      // something else is close-delimited.
      this.#transferEncoding = true;
      this.#chunked = lastTokenIs(buf, colon + 1, end, CHUNKED);
    } else if (nameIs(buf, start, colon, CONNECTION)) {
      if (hasToken(buf, colon + 1, end, CLOSE)) this.#connectionClose = true;
    }
    return READ_MORE;
  }

  #endOfHead(): number {
    if (this.#interim) {
      this.#phase = STATUS;
      this.#interim = false;
      return READ_MORE;
    }
    // RFC 9112 §6.3: 204 and 304 have no body; Transfer-Encoding wins over Content-Length, and
    // a Transfer-Encoding whose final coding is not chunked makes the body close-delimited.
    const bodiless = this.status === 204 || this.status === 304;
    const lengthFramed = !this.#transferEncoding && this.#contentLength >= 0;
    const framed = bodiless || this.#chunked || lengthFramed;
    // A body announced beyond the read limit is not read to its end, so its connection is not kept.
    const oversized = !bodiless && lengthFramed && this.#contentLength > BODY_LIMIT_BYTES;
    this.#persistent = this.keepAlive && this.#http11 && !this.#connectionClose && framed && !oversized;
    // Without body_match only a connection worth keeping needs the rest of the message.
    if (!this.needBody && !this.#persistent) return this.#finish(false);
    if (bodiless) return this.#finish(true);
    if (this.#chunked) {
      this.#phase = CHUNK_SIZE;
    } else if (lengthFramed) {
      if (this.#contentLength === 0) return this.#finish(true);
      this.#phase = BODY_LENGTH;
      this.#remaining = this.#contentLength;
    } else {
      this.#phase = BODY_CLOSE;
    }
    return READ_MORE;
  }

  #chunkSizeLine(line: string): number {
    // chunk-size [ ";" chunk-ext ]: RFC 9112 §7.1.1 allows extensions, which we ignore.
    const semi = line.indexOf(';');
    const hex = (semi >= 0 ? line.slice(0, semi) : line).trim();
    if (!/^[0-9A-Fa-f]{1,12}$/.test(hex)) return ERR_BAD_RESPONSE;
    const size = parseInt(hex, 16);
    // The last chunk: the body is complete. Trailers are not needed for a verdict, only to
    // reach the end of the message when the connection is to be kept.
    if (size === 0) {
      if (!this.#persistent) return this.#finish(false);
      this.#phase = TRAILERS;
      this.#headBytes = 0;
      return READ_MORE;
    }
    this.#remaining = size;
    this.#phase = CHUNK_DATA;
    return READ_MORE;
  }
}

const HTTP_PREFIX = [0x48, 0x54, 0x54, 0x50, 0x2f]; // "HTTP/"

/** True when the available bytes could be the start of "HTTP/". */
function startsLikeHttp(buf: Buffer, off: number, end: number): boolean {
  const n = Math.min(end - off, HTTP_PREFIX.length);
  for (let i = 0; i < n; i++) if (buf[off + i] !== HTTP_PREFIX[i]) return false;
  return true;
}

function isDigit(b: number): boolean {
  return b >= 0x30 && b <= 0x39;
}

function lower(b: number): number {
  return b >= 0x41 && b <= 0x5a ? b | 0x20 : b;
}

/** True when buf[start, end) is `name` (lower-case) in any case. */
function nameIs(buf: Buffer, start: number, end: number, name: Buffer): boolean {
  if (end - start !== name.length) return false;
  for (let i = 0; i < name.length; i++) if (lower(buf[start + i]) !== name[i]) return false;
  return true;
}

function isOws(b: number): boolean {
  return b === 0x20 || b === 0x09;
}

/** Parses a Content-Length value (1–15 digits, optional whitespace around); -1 when it is anything else. */
function parseLength(buf: Buffer, start: number, end: number): number {
  while (start < end && isOws(buf[start])) start++;
  while (end > start && isOws(buf[end - 1])) end--;
  if (end === start || end - start > 15) return -1;
  let n = 0;
  for (let i = start; i < end; i++) {
    if (!isDigit(buf[i])) return -1;
    n = n * 10 + (buf[i] - 0x30);
  }
  return n;
}

/** True when one comma-separated element of buf[start, end), whitespace trimmed, is `token` in any case. */
function hasToken(buf: Buffer, start: number, end: number, token: Buffer): boolean {
  let from = start;
  for (let i = start; i <= end; i++) {
    if (i === end || buf[i] === 0x2c) {
      if (trimmedIs(buf, from, i, token)) return true;
      from = i + 1;
    }
  }
  return false;
}

/** True when the last comma-separated element of buf[start, end), whitespace trimmed, is `token` in any case. */
function lastTokenIs(buf: Buffer, start: number, end: number, token: Buffer): boolean {
  let from = start;
  for (let i = end - 1; i >= start; i--) {
    if (buf[i] === 0x2c) {
      from = i + 1;
      break;
    }
  }
  return trimmedIs(buf, from, end, token);
}

function trimmedIs(buf: Buffer, start: number, end: number, token: Buffer): boolean {
  while (start < end && isOws(buf[start])) start++;
  while (end > start && isOws(buf[end - 1])) end--;
  return nameIs(buf, start, end, token);
}
