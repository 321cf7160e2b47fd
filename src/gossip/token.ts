// Main thread (agent and overwatch), per registration. Service tokens never
// travel: a registration carries, per service, an HMAC-SHA-256 keyed with the
// token over the agent id, the service and the certificate's fingerprint.
// The overwatch computes the same with overwatch.agent_tokens[service] and
// compares in constant time. A proof seen on the wire is bound to that
// certificate, whose key an eavesdropper does not have, so it cannot be
// reused, and it reveals nothing about the token beyond what an offline
// guess could test (tokens are ≥ 16 characters).

import { createHmac, timingSafeEqual } from 'node:crypto';

const PROOF_CONTEXT = 'opengslb service token proof v1';

/** Computes the proof that the holder of `token` registers `service` for this agent and certificate (32 bytes). */
export function tokenProof(token: string, agentId: string, service: string, fingerprint: string): Buffer {
  // NUL separators: no field may contain NUL (ids, names and hex fingerprints cannot), so the input is unambiguous.
  return createHmac('sha256', token).update(`${PROOF_CONTEXT}\0${agentId}\0${service}\0${fingerprint}`).digest();
}

/**
 * Tells whether `proof` matches `token` for this agent, service and
 * certificate. Both sides are 32-byte digests, so timingSafeEqual compares
 * equal lengths and the time taken does not depend on where they differ.
 */
export function checkTokenProof(proof: Uint8Array, token: string, agentId: string, service: string, fingerprint: string): boolean {
  const expected = tokenProof(token, agentId, service, fingerprint);
  return proof.length === expected.length && timingSafeEqual(proof, expected);
}
