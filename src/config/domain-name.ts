// Cold path, main thread. Validates and normalises domain names written in the
// config (zones, domains, name servers, SOA fields).

/** RFC 1035 §2.3.4: a label is at most 63 octets. */
export const MAX_LABEL_LEN = 63;
/** RFC 1035 §2.3.4: a name is at most 255 octets in wire form (length bytes and the root byte included). */
export const MAX_NAME_WIRE_LEN = 255;

const LABEL_CHARS = /^[a-z0-9_-]+$/;

/** The result of normalising a name: lower-case without the trailing dot, or what is wrong with the text. */
export type NameResult = { readonly name: string } | { readonly error: string };

/**
 * Normalises a domain name: accepts it with or without the trailing dot and in
 * any case, returns it lower-case without the dot. Labels must be 1..63 octets
 * of letters, digits, hyphens and underscores; the wire form must fit 255
 * octets. The root name and wildcards are refused. Never throws.
 */
export function normaliseDomainName(text: string): NameResult {
  const expected = 'expected a domain name such as "app.example.com"';
  const quoted = JSON.stringify(text);
  // ASCII letters only: String.toLowerCase() turns the Kelvin sign (U+212A) into "k" and U+0130
  // into "i" plus a combining dot, so a non-ASCII name would pass as, or be reported as, another.
  const name = asciiLower(text.endsWith('.') ? text.slice(0, -1) : text);
  if (name === '') return { error: `${quoted} is ${text === '' ? 'empty' : 'the root name'}, ${expected}` };
  const labels = name.split('.');
  let wireLen = 1; // the root label's length byte
  for (const label of labels) {
    if (label === '') return { error: `${quoted} has an empty label (two dots in a row, or a leading dot), ${expected}` };
    if (label.length > MAX_LABEL_LEN) {
      return { error: `${quoted} has a label of ${label.length} characters, expected at most ${MAX_LABEL_LEN} per label` };
    }
    if (!LABEL_CHARS.test(label)) {
      if (label.includes('*')) return { error: `${quoted} is a wildcard, which is not supported yet; ${expected}` };
      // Name the first offending character so the fix is obvious.
      const bad = [...label].find((c) => !/[a-z0-9_-]/.test(c)) ?? '?';
      const hint = /[^\x00-\x7f]/.test(bad) ? ' (write internationalised names in their xn-- form)' : '';
      return { error: `${quoted} contains ${JSON.stringify(bad)}${hint}, expected only letters, digits, hyphens and underscores in each label` };
    }
    wireLen += 1 + label.length;
  }
  if (wireLen > MAX_NAME_WIRE_LEN) {
    return { error: `${quoted} is ${wireLen} octets long in wire form, expected at most ${MAX_NAME_WIRE_LEN}` };
  }
  return { name };
}

/** Lower-cases A-Z and nothing else. */
export function asciiLower(text: string): string {
  return text.replace(/[A-Z]+/g, (run) => run.toLowerCase());
}

/** Upper-cases a-z and nothing else ("\u0131".toUpperCase() is "I", "\u00df".toUpperCase() "SS"). */
export function asciiUpper(text: string): string {
  return text.replace(/[a-z]+/g, (run) => run.toUpperCase());
}

/**
 * Normalises an SOA RNAME: either a mailbox in domain-name form
 * ("hostmaster.example.com") or an e-mail address ("hostmaster@example.com"),
 * which becomes "hostmaster.example.com". A dot in the e-mail local part is
 * refused, because it would need escaping in the domain-name form (RFC 1035 §8). Never throws.
 */
export function normaliseMailbox(text: string): NameResult {
  const at = text.indexOf('@');
  if (at < 0) return normaliseDomainName(text);
  const local = text.slice(0, at);
  const expected = 'expected a mailbox such as "hostmaster@example.com" or "hostmaster.example.com"';
  if (local.includes('.')) {
    return { error: `${JSON.stringify(text)} has a dot in the part before "@", which the SOA RNAME cannot carry without escaping; ${expected}` };
  }
  if (local === '') return { error: `${JSON.stringify(text)} has nothing before "@", ${expected}` };
  const domain = text.slice(at + 1);
  if (domain.includes('@')) return { error: `${JSON.stringify(text)} has more than one "@", ${expected}` };
  const result = normaliseDomainName(`${local}.${domain}`);
  if ('error' in result) return { error: `${JSON.stringify(text)} is not a valid mailbox, ${expected}` };
  return result;
}
