// What an HTTP/1.1 request line and header may hold, shared by the config
// checks (a health check that could never be sent is refused at load) and the
// probe that sends it (src/health/probe.ts), so both agree to the character.

/** RFC 9110 §5.1: a header name (a token). */
export const HEADER_NAME = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
/** RFC 9110 §5.5: a header value (visible characters, spaces, tabs, obs-text); no CR, LF or other control characters. */
export const HEADER_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/;
/** A request path sent as it is: "/" then visible ASCII (a space or a non-ASCII character must be %-encoded). */
export const REQUEST_PATH = /^\/[\x21-\x7e]*$/;
