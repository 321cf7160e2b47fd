// Any thread, cold path. Every reason the overwatch drops an agent message
// for, as one table: the counters, the metrics label values and docs/agents.md
// all use these names (test/gossip/docs.test.ts keeps the docs in step).

/** Why a message was dropped, each with the one-line meaning docs/agents.md repeats. */
export const DROP_REASONS = {
  too_short: 'shorter than an envelope header and tag',
  bad_magic: 'does not start with the envelope magic "OGSL" (not an OpenGSLB message)',
  bad_version: 'an envelope version or flags this overwatch does not know',
  unknown_key: 'sealed under a key id that is not in the keyring (wrong or retired gossip key)',
  decrypt_failed: 'the AES-GCM tag does not verify: changed, truncated or extended bytes',
  malformed: 'decrypted, but the plaintext is not a MessagePack [body, signature] pair',
  invalid_message: 'the body is not a valid message: missing, unknown or wrongly typed field',
  unexpected_type: 'a message type the receiver does not take (an ack sent to an overwatch)',
  clock_skew: 'timestamp further in the future than the allowed clock skew',
  too_old: 'timestamp older than the allowed age, or older than this overwatch process',
  replayed: 'sequence number already seen from this agent',
  outside_window: 'sequence number older than the replay window (reordered too far)',
  unpinned: 'no pinned certificate for this agent id: it must register first',
  revoked: 'the agent\'s pin is revoked',
  bad_signature: 'the signature does not verify with the pinned (or presented) certificate',
  certificate_invalid: 'the certificate is not a self-signed P-256 or Ed25519 certificate for this agent id',
  certificate_expired: 'the certificate is outside its validity period',
  certificate_mismatch: 'a different certificate than the pinned one, without a rotation signed by the pinned key',
  token_missing: 'a backend\'s service has no token proof in the registration',
  token_mismatch: 'a token proof does not match overwatch.agent_tokens for its service',
  token_unknown_service: 'a token proof for a service that has no entry in overwatch.agent_tokens',
  service_not_registered: 'a backend for a service the agent did not register with a token',
  unknown_region: 'the registration names a region this overwatch does not have',
  agent_limit: 'the registration of a new agent while this overwatch pins overwatch.gossip.max_agents agents',
  too_large: 'larger than the receiver\'s message limit',
  connection_limit: 'a TCP connection beyond the receiver\'s connection limit',
  buffer_limit: 'partly received TCP messages would exceed the receiver\'s memory budget; the connection is closed',
} as const;

/** One drop reason: a key of DROP_REASONS. */
export type DropReason = keyof typeof DROP_REASONS;

/** Every drop reason, in table order. */
export const DROP_REASON_NAMES = Object.keys(DROP_REASONS) as DropReason[];
