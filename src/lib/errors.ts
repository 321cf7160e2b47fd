// Cold path, any thread. The one registry of coded errors: every error the
// project throws on purpose is created here, and docs/errors.md lists every
// code (test/lib/errors.test.ts keeps the two in sync).

/** Describes one coded error: its stable code, what it means, and (later) its HTTP status. */
export interface ErrorSpec {
  readonly code: string;
  readonly summary: string;
  readonly httpStatus: number;
}

/** Lists every error code this project can produce, keyed by code. */
export const ERRORS = {
  OPENGSLB_ERR_CONFIG_INVALID: {
    code: 'OPENGSLB_ERR_CONFIG_INVALID',
    summary: 'The configuration has one or more problems; each is reported as file:line:col: path: what is wrong, what was expected.',
    httpStatus: 400,
  },
  OPENGSLB_ERR_CONFIG_READ: {
    code: 'OPENGSLB_ERR_CONFIG_READ',
    summary: 'A file the configuration names could not be read (missing, not a file, too large, or no permission): a config file, an include, the cookie secret file or the NATS credentials file.',
    httpStatus: 400,
  },
  OPENGSLB_ERR_CONFIG_PERMISSIONS: {
    code: 'OPENGSLB_ERR_CONFIG_PERMISSIONS',
    summary: 'A configuration file has unsafe permissions (world-writable, or world-readable while it holds a secret).',
    httpStatus: 400,
  },
  OPENGSLB_ERR_NODE_VERSION: {
    code: 'OPENGSLB_ERR_NODE_VERSION',
    summary: 'The Node.js running the entry point is older than the version the project needs.',
    httpStatus: 500,
  },
  OPENGSLB_ERR_CLI_USAGE: {
    code: 'OPENGSLB_ERR_CLI_USAGE',
    summary: 'A command-line flag or argument is unknown or has a bad value.',
    httpStatus: 400,
  },
  OPENGSLB_ERR_DNS_BIND: {
    code: 'OPENGSLB_ERR_DNS_BIND',
    summary: 'The DNS listener could not bind its UDP or TCP socket at dns.listen_address.',
    httpStatus: 500,
  },
  OPENGSLB_ERR_WORKER_START: {
    code: 'OPENGSLB_ERR_WORKER_START',
    summary: 'A DNS worker thread failed to start (snapshot attach or socket setup).',
    httpStatus: 500,
  },
  OPENGSLB_ERR_SNAPSHOT_COMPILE: {
    code: 'OPENGSLB_ERR_SNAPSHOT_COMPILE',
    summary: 'The routing snapshot could not be built from the configuration (a limit of the binary format was exceeded, or geo mappings that contradict each other).',
    httpStatus: 500,
  },
  OPENGSLB_ERR_GEO_DATABASE: {
    code: 'OPENGSLB_ERR_GEO_DATABASE',
    summary: 'The GeoIP database file could not be read or is not a usable MaxMind DB (.mmdb) with country or continent data; on a reload the database in use keeps serving.',
    httpStatus: 500,
  },
  OPENGSLB_ERR_NOT_FOUND: {
    code: 'OPENGSLB_ERR_NOT_FOUND',
    summary: 'The domain, server or override named in the request does not exist in the served configuration.',
    httpStatus: 404,
  },
  OPENGSLB_ERR_REGISTRY_REFUSED: {
    code: 'OPENGSLB_ERR_REGISTRY_REFUSED',
    summary: 'A server or a geo mapping could not be registered: its region is not served here, its address is not an IP literal, another source (the config, an agent) already owns it, or the geo table already holds its 100 000 custom mappings.',
    httpStatus: 409,
  },
  OPENGSLB_ERR_STATE_OPEN: {
    code: 'OPENGSLB_ERR_STATE_OPEN',
    summary: 'The state database under overwatch.data_dir could not be opened or created (missing permission, not a directory, or a damaged state.mdb: cut short, not lmdb, another lmdb data format; or an opengslb.pid that is not a readable regular file, such as a directory, FIFO or symbolic link in its place, which is never taken as stale); a directory another process holds is OPENGSLB_ERR_STATE_LOCKED.',
    httpStatus: 500,
  },
  OPENGSLB_ERR_STATE_LOCKED: {
    code: 'OPENGSLB_ERR_STATE_LOCKED',
    summary: 'Another running overwatch holds the state directory (overwatch.data_dir); the message names the directory and its pid. Two instances must not share one directory.',
    httpStatus: 500,
  },
  OPENGSLB_ERR_STATE_WRITE: {
    code: 'OPENGSLB_ERR_STATE_WRITE',
    summary: 'A change could not be written to the state database; it was not applied.',
    httpStatus: 500,
  },
  OPENGSLB_ERR_GOSSIP_KEY: {
    code: 'OPENGSLB_ERR_GOSSIP_KEY',
    summary: 'A gossip encryption key is missing or is not standard base64 of exactly 32 bytes (generate one with openssl rand -base64 32).',
    httpStatus: 500,
  },
  OPENGSLB_ERR_AGENT_IDENTITY: {
    code: 'OPENGSLB_ERR_AGENT_IDENTITY',
    summary: 'The agent certificate or key file (agent.identity.cert_path, key_path) could not be created, read or used.',
    httpStatus: 500,
  },
  OPENGSLB_ERR_GOSSIP_BIND: {
    code: 'OPENGSLB_ERR_GOSSIP_BIND',
    summary: 'The agent channel receiver could not bind its UDP or TCP socket at overwatch.gossip.bind_address.',
    httpStatus: 500,
  },
  OPENGSLB_ERR_API_BAD_REQUEST: {
    code: 'OPENGSLB_ERR_API_BAD_REQUEST',
    summary: 'An admin API request has a missing or malformed path parameter, query parameter or body field.',
    httpStatus: 400,
  },
  OPENGSLB_ERR_API_UNAUTHORIZED: {
    code: 'OPENGSLB_ERR_API_UNAUTHORIZED',
    summary: 'An admin API write came without the bearer token api.token asks for, or with a different one.',
    httpStatus: 401,
  },
  OPENGSLB_ERR_API_FORBIDDEN: {
    code: 'OPENGSLB_ERR_API_FORBIDDEN',
    summary: 'The client address of an admin API request is outside api.allowed_networks.',
    httpStatus: 403,
  },
  OPENGSLB_ERR_API_NO_ROUTE: {
    code: 'OPENGSLB_ERR_API_NO_ROUTE',
    summary: 'The admin API has no route at the requested path.',
    httpStatus: 404,
  },
  OPENGSLB_ERR_API_METHOD: {
    code: 'OPENGSLB_ERR_API_METHOD',
    summary: 'The admin API route exists but does not accept the request method.',
    httpStatus: 405,
  },
  OPENGSLB_ERR_API_STARTING: {
    code: 'OPENGSLB_ERR_API_STARTING',
    summary: 'The overwatch is still starting (the first health round has not finished), so only live, ready, version, openapi.json and the dashboard\'s files answer.',
    httpStatus: 503,
  },
  OPENGSLB_ERR_DNSSEC_ALGORITHM: {
    code: 'OPENGSLB_ERR_DNSSEC_ALGORITHM',
    summary: 'A DNSSEC algorithm is unknown or does not match its key; only ECDSAP256SHA256 (13) and ED25519 (15) are signed with.',
    httpStatus: 400,
  },
  OPENGSLB_ERR_DNSSEC_KEY_CORRUPT: {
    code: 'OPENGSLB_ERR_DNSSEC_KEY_CORRUPT',
    summary: 'A DNSSEC key in the state database cannot be read back or does not check out; the zone is not signed with it.',
    httpStatus: 500,
  },
  OPENGSLB_ERR_DNSSEC_ROLLOVER: {
    code: 'OPENGSLB_ERR_DNSSEC_ROLLOVER',
    summary: 'A key rollover step was asked for at the wrong time: a rollover is already running, the new key does not sign yet, or no rollover is running to finish.',
    httpStatus: 409,
  },
  OPENGSLB_ERR_DNSSEC_KEY_SYNC: {
    code: 'OPENGSLB_ERR_DNSSEC_KEY_SYNC',
    summary: 'A key-sync request or answer did not prove the shared secret (or could not be read); nothing was exchanged.',
    httpStatus: 403,
  },
} as const satisfies Record<string, ErrorSpec>;

export type ErrorCode = keyof typeof ERRORS;

/** Creates an Error carrying one of the registered codes; `message` says where, what, and what was expected. */
export class OpenGslbError extends Error {
  readonly code: ErrorCode;
  readonly httpStatus: number;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'OpenGslbError';
    this.code = code;
    this.httpStatus = ERRORS[code].httpStatus;
  }
}
