// Any thread, cold path. What went wrong below HTTP when fetch() could not get
// an answer from another admin API (opengslb-cli, overwatch peers, DNSSEC key
// sync), in words an operator can act on: refused, unknown host, reset, not
// HTTP, a certificate this process does not trust, or fetch's own cause; and
// reading such an answer with a size limit.

/** OpenSSL's verify errors for a certificate whose issuer is not among the trusted roots (or that has expired). */
const UNTRUSTED_CERT_CODES: ReadonlySet<string> = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'UNABLE_TO_GET_ISSUER_CERT', 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY', 'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT', 'CERT_HAS_EXPIRED', 'CERT_NOT_YET_VALID', 'CERT_UNTRUSTED',
]);

/**
 * Says why fetch(`url`) threw (not a timeout: callers name their own limit).
 * `trustRemedy` ends the sentence for an untrusted certificate: how this
 * caller is given the CA that issued the other side's api.tls.cert_file.
 */
export function fetchFailureText(err: unknown, url: string, trustRemedy: string): string {
  const e = err as { message?: string; cause?: { code?: string; message?: string } };
  const code = e.cause?.code;
  return code === 'ECONNREFUSED' ? 'connection refused'
    : code === 'ENOTFOUND' || code === 'EAI_AGAIN' ? 'host not found'
    : code === 'ECONNRESET' && url.startsWith('https:') ? 'the TLS handshake failed (is the API served over plain http://?)'
    : code === 'ECONNRESET' || code === 'UND_ERR_SOCKET' ? 'connection closed before an answer'
    // undici's parser error: something answered, but not in HTTP (a DNS port, an SSH server…).
    : e.cause?.message?.includes('does not match the HTTP/1.1 protocol') ? 'what answers there does not speak HTTP, so it is not the admin API'
    : typeof code === 'string' && UNTRUSTED_CERT_CODES.has(code) ? `its TLS certificate is not trusted (${code}: ${e.cause?.message ?? ''}); ${trustRemedy}`
    : code === 'ERR_TLS_CERT_ALTNAME_INVALID' ? `its TLS certificate does not name this host (${e.cause?.message ?? code}); use a host name or IP the certificate lists`
    : typeof code === 'string' && code.startsWith('ERR_SSL') ? `the TLS handshake failed (${e.cause?.message ?? code}); is the API served over plain http://?`
    // The Fetch standard blocks some ports (1, 6000, 6665-6669, 10080…); Node's fetch says only "bad port".
    : e.cause?.message === 'bad port' ? `port ${new URL(url).port} is one that fetch refuses to use; serve the API on another port`
    : (e.cause?.message ?? e.message ?? String(err));
}

/** The remedy for an overwatch that does not trust a peer's certificate: it uses Node's trust store. */
export const PEER_TRUST_REMEDY =
  "start this overwatch with NODE_EXTRA_CA_CERTS set to the PEM file of the CA that issued the peer's api.tls.cert_file (or with node --use-system-ca when that CA is in the system's store)";

/** Thrown by readTextCapped for an answer over its limit; its message says so in words. */
export class AnswerTooLargeError extends Error {
  override readonly name = 'AnswerTooLargeError';
}

/**
 * The body of `res` as text, read as it streams and given up (the rest is
 * cancelled) once it passes `maxBytes`: a peer URL that streams without end
 * (a misconfigured URL, a proxy's endless page) would otherwise fill this
 * process's memory within the request's timeout.
 */
export async function readTextCapped(res: Response, maxBytes: number): Promise<string> {
  if (res.body === null) return '';
  const declared = Number(res.headers.get('content-length'));
  if (declared > maxBytes) {
    await res.body.cancel().catch(() => {});
    throw new AnswerTooLargeError(`the answer is ${declared} bytes, expected at most ${maxBytes}`);
  }
  const chunks: Uint8Array[] = [];
  let total = 0;
  for await (const chunk of res.body as AsyncIterable<Uint8Array>) {
    total += chunk.byteLength;
    if (total > maxBytes) {
      await res.body.cancel().catch(() => {});
      throw new AnswerTooLargeError(`the answer is larger than ${maxBytes} bytes, expected at most ${maxBytes}`);
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks, total).toString('utf8');
}
