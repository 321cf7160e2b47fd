// Any thread, cold path. The names the overwatch's agent handling uses in the
// API, the metrics and the logs, in a module without dependencies, so the
// metrics and the API can name them without loading the agent channel (its
// certificate code costs memory an overwatch without agents need not pay).

import type { AgentMessageType } from '../gossip/channel.ts';

/** Where an agent stands, as the API and the metrics show it. */
export const AGENT_STATES = ['live', 'stale', 'unseen', 'deregistered', 'removed', 'revoked'] as const;
export type AgentState = (typeof AGENT_STATES)[number];

/**
 * What an agent's backend is, as its transitions are logged and counted:
 * the agent's claim (healthy, unhealthy, unknown), draining, stale, validated
 * (the overwatch's own checks decide), refused (kept but never answered: see
 * BACKEND_REFUSALS), or removed.
 */
export const BACKEND_STATES = ['healthy', 'unhealthy', 'unknown', 'draining', 'stale', 'validated', 'refused', 'removed'] as const;
export type BackendState = (typeof BACKEND_STATES)[number];

/**
 * Why an agent's backend is kept but not answered at all, or (backend_limit)
 * not taken: a delta that would give its agent more than MAX_BACKENDS_PER_AGENT.
 */
export const BACKEND_REFUSALS = ['host_name', 'registry_refused', 'other_agent', 'backend_limit'] as const;
export type BackendRefusal = (typeof BACKEND_REFUSALS)[number];

/** The message types the channel accepts (src/gossip/channel.ts AGENT_MESSAGE_TYPES, checked here at compile time). */
export const ACCEPTED_MESSAGE_TYPES = ['register', 'heartbeat', 'health_update', 'deregister'] as const satisfies readonly AgentMessageType[];
