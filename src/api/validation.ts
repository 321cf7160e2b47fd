// Main thread, cold path. Turns Ajv's schema-validation errors into messages
// that say which field is wrong and what was expected, for 400 answers:
// `body field "healthy": got the string "yes", expected true or false`.

import { OpenGslbError } from '../lib/errors.ts';
import { NAME_TEXT_PATTERN, TEXT_FORBIDDEN, TEXT_PATTERN } from './schemas.ts';

/** The parts of an Ajv error we read (Fastify's Ajv runs with `verbose: true`, which adds data and parentSchema). */
export interface AjvError {
  readonly keyword: string;
  readonly instancePath: string;
  readonly params: Record<string, unknown>;
  readonly message?: string;
  readonly data?: unknown;
  readonly parentSchema?: Record<string, unknown>;
}

const PLACES: Record<string, string> = { body: 'body field', querystring: 'query parameter', params: 'path parameter', headers: 'header' };
const WHOLE: Record<string, string> = { body: 'request body', querystring: 'query string', params: 'path', headers: 'headers' };

/**
 * Builds the 400 error for the first failed check (Fastify runs Ajv with
 * allErrors off, so there is one). `part` is Fastify's name of the request
 * part: body, querystring, params or headers.
 */
export function validationError(errors: readonly AjvError[], part: string): OpenGslbError {
  const e = errors[0];
  const message = e === undefined ? `${WHOLE[part] ?? part}: invalid` : describeError(e, part);
  return new OpenGslbError('OPENGSLB_ERR_API_BAD_REQUEST', message);
}

function describeError(e: AjvError, part: string): string {
  const schema = e.parentSchema ?? {};
  switch (e.keyword) {
    case 'required': {
      const name = String(e.params.missingProperty);
      const props = (schema.properties ?? {}) as Record<string, Record<string, unknown>>;
      return `${where(part, e.instancePath, name)}: missing, expected ${expected(props[name] ?? {})}`;
    }
    case 'additionalProperties': {
      const name = String(e.params.additionalProperty);
      const known = Object.keys((schema.properties ?? {}) as object);
      const allowed = known.length === 0 ? 'none' : `only ${known.join(', ')}`;
      return `${where(part, e.instancePath, name)}: unknown ${part === 'body' ? 'field' : 'parameter'}, expected ${allowed}`;
    }
    case 'type':
      // Fastify hands an absent body to the validator as null or undefined.
      if (part === 'body' && e.instancePath === '' && (e.data === null || e.data === undefined)) return `request body: missing, expected ${expected(schema)}`;
      return `${where(part, e.instancePath)}: got ${kindOf(e.data)}, expected ${expected(schema)}`;
    case 'pattern': {
      const bad = typeof e.data === 'string' ? forbiddenCharacter(e.data) : null;
      if (bad !== null) return `${where(part, e.instancePath)}: has the control character ${bad.code} at character ${bad.at}, expected ${expected(schema)}`;
      return `${where(part, e.instancePath)}: got ${kindOf(e.data)}, expected ${expected(schema)}`;
    }
    case 'enum':
    case 'minLength':
    case 'maxLength':
    case 'format':
      return `${where(part, e.instancePath)}: got ${kindOf(e.data)}, expected ${expected(schema)}`;
    default:
      return `${where(part, e.instancePath)}: ${e.message ?? 'is invalid'}`;
  }
}

/** Names the field: `body field "source"`, `query parameter "status"`, or the whole part for the root. */
function where(part: string, instancePath: string, child?: string): string {
  // instancePath is a JSON Pointer ("/a/b"); our schemas are one level deep, so a dotted path reads fine.
  const path = instancePath.replace(/^\//, '').replaceAll('/', '.');
  const name = child === undefined ? path : path === '' ? child : `${path}.${child}`;
  return name === '' ? (WHOLE[part] ?? part) : `${PLACES[part] ?? part} ${JSON.stringify(name)}`;
}

/** The route schemas' patterns in words (region names and agent ids; config/definition.ts takes region names alike). */
const PATTERN_TEXT: Readonly<Record<string, string>> = {
  '^[A-Za-z0-9][A-Za-z0-9._-]*$': 'a name of letters, digits, ".", "_" and "-", starting with a letter or digit',
  [TEXT_PATTERN]: 'a string of printable text (no control characters: no newline, tab or escape)',
  [NAME_TEXT_PATTERN]: 'a non-empty string, not only spaces, of printable text (no control characters: no newline, tab or escape)',
};

const FORBIDDEN = new RegExp(`[${TEXT_FORBIDDEN}]`, 'u');

/**
 * Finds the first character of free text that TEXT_FORBIDDEN refuses: its
 * code point as U+XXXX (the character itself may not show, or may garble the
 * message) and its position, counted in characters from 1; null when none.
 */
function forbiddenCharacter(text: string): { readonly code: string; readonly at: number } | null {
  let at = 0;
  for (const c of text) {
    at++;
    if (FORBIDDEN.test(c)) return { code: `U+${c.codePointAt(0)!.toString(16).toUpperCase().padStart(4, '0')}`, at };
  }
  return null;
}

/** Says in words what a (flat) schema accepts. */
export function expected(schema: Record<string, unknown>): string {
  if (Array.isArray(schema.enum)) return `one of ${schema.enum.map((v) => JSON.stringify(v)).join(', ')}`;
  const type = Array.isArray(schema.type) ? schema.type.filter((t) => t !== 'null')[0] : schema.type;
  switch (type) {
    case 'boolean':
      return 'true or false (a JSON boolean)';
    case 'object': {
      const props = Object.keys((schema.properties ?? {}) as object);
      if (props.length === 0) return 'a JSON object';
      const required = Array.isArray(schema.required) ? (schema.required as string[]) : [];
      const optional = props.filter((p) => !required.includes(p));
      return `a JSON object with ${required.join(', ') || 'no required fields'}${optional.length > 0 ? ` (optional: ${optional.join(', ')})` : ''}`;
    }
    case 'integer':
      return 'an integer';
    case 'number':
      return 'a number';
    case 'string': {
      const min = typeof schema.minLength === 'number' ? schema.minLength : 0;
      const max = typeof schema.maxLength === 'number' ? schema.maxLength : null;
      // A pattern failure must say which characters are taken: "a non-empty string of at most 63 characters" of a
      // short non-empty name did not say what was wrong with it.
      const named = typeof schema.pattern === 'string' ? PATTERN_TEXT[schema.pattern] : undefined;
      const what = named ?? (min > 0 || schema.pattern !== undefined ? 'a non-empty string' : 'a string');
      return max === null ? what : `${what}${named === undefined ? '' : ','} of at most ${max} characters`;
    }
    default:
      return typeof schema.description === 'string' ? schema.description : 'a valid value';
  }
}

/** Describes a received value briefly: `the string "yes"`, `the number 1`, `an array`, `null`. */
function kindOf(value: unknown): string {
  if (value === null) return 'null';
  if (value === undefined) return 'nothing';
  if (Array.isArray(value)) return 'an array';
  switch (typeof value) {
    case 'string':
      return value.length > 40 ? `a string of ${value.length} characters` : `the string ${JSON.stringify(value)}`;
    case 'number':
      return `the number ${value}`;
    case 'boolean':
      return `the boolean ${value}`;
    case 'object':
      return 'an object';
    default:
      return typeof value;
  }
}
