// Cold path, build time. Generates a JSON Schema (draft-07, which YAML
// language servers read) from the config definition, so editors check a
// config while it is typed. Generic over the schema language of schema.ts:
// a new key in definition.ts appears here without a change to this file.
// `npm run schema` writes it to docs/config.schema.json; a test keeps that
// file current.

import { writeFileSync } from 'node:fs';
import { CONFIG_SCHEMA } from './definition.ts';
import type { EndpointSchema, EnumSchema, ScalarSchema, Schema } from './schema.ts';

/** A JSON Schema object, as plain JSON data. */
export type JsonSchema = { [key: string]: JsonValue };
type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue };

/** Where the generated file lives, relative to the repository root. */
export const JSON_SCHEMA_FILE = 'docs/config.schema.json';

const ENV_REF = { $ref: '#/definitions/envReference' };
const IPV4 = '(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])(?:\\.(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])){3}';
// IPv6 is only sketched (hex digits and colons, at least one colon); the validator checks the real syntax.
const IPV6 = '[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*';
const LABEL = '[A-Za-z0-9_-]{1,63}';
const DOMAIN = `(?:${LABEL}\\.)*${LABEL}\\.?`;
const DURATION = '^(?:0|(?:(?:[0-9]+(?:\\.[0-9]*)?|\\.[0-9]+)(?:ns|us|µs|μs|ms|s|m|h))+)$';

/**
 * Builds the JSON Schema of `root` (the whole config file by default). Every
 * key carries its doc string, default and limits; a key that may be left out
 * also accepts null (the validator treats `key:` as absent); scalars other
 * than free text also accept a ${VAR} reference, which the validator expands
 * first. The conditional requirement of `regions` and `domains` in overwatch
 * mode is left out, so an included file, which holds only part of a config,
 * validates too. Patterns for addresses and names are looser than the
 * validator: the schema never refuses a config the server accepts.
 */
export function createJsonSchema(root: Schema = CONFIG_SCHEMA): JsonSchema {
  return {
    $schema: 'http://json-schema.org/draft-07/schema#',
    $comment: 'Generated from src/config/definition.ts by `npm run schema`; do not edit by hand.',
    title: 'OpenGSLB configuration',
    ...convert(root),
    definitions: {
      envReference: {
        description: 'A value taken from the environment when the config is loaded: ${NAME} or ${NAME:-default}.',
        type: 'string',
        pattern: '\\$\\{[A-Za-z_][A-Za-z0-9_]*(?::-[^}]*)?\\}',
      },
    },
  };
}

/** Formats the schema as the committed file holds it: two-space indent, final newline. */
export function formatJsonSchema(schema: JsonSchema): string {
  return JSON.stringify(schema, null, 2) + '\n';
}

/** Converts one schema node: its type and limits, with the description and default beside them. */
function convert(schema: Schema): JsonSchema {
  const out: JsonSchema = { description: describe(schema) };
  if ('default' in schema && schema.default !== undefined) out.default = schema.default as JsonValue;
  switch (schema.kind) {
    case 'object': {
      const properties: { [key: string]: JsonValue } = {};
      const required: string[] = [];
      for (const [key, child] of Object.entries(schema.keys)) {
        properties[key] = child.required === true ? convert(child) : nullable(convert(child));
        if (child.required === true) required.push(key);
      }
      Object.assign(out, { type: 'object', properties, additionalProperties: false });
      if (required.length > 0) out.required = required;
      return out;
    }
    case 'map':
      return Object.assign(out, { type: 'object', additionalProperties: convert(schema.values) });
    case 'list': {
      Object.assign(out, { type: 'array', items: convert(schema.items) });
      if (schema.minItems !== undefined) out.minItems = schema.minItems;
      if (schema.maxItems !== undefined) out.maxItems = schema.maxItems;
      if (schema.uniqueItems === true) out.uniqueItems = true;
      return out;
    }
    case 'oneOf':
      return Object.assign(out, { anyOf: schema.variants.map(convert) });
    default: {
      const core = scalar(schema);
      // Free text takes a ${VAR} as it is; anything with a type or a pattern needs the alternative.
      const plainText = schema.kind === 'string' && core.pattern === undefined && core.minLength === undefined && core.maxLength === undefined;
      return Object.assign(out, plainText ? core : { anyOf: [core, ENV_REF] });
    }
  }
}

/** The type and limits of a scalar key, without description or default. */
function scalar(schema: ScalarSchema): JsonSchema {
  switch (schema.kind) {
    case 'string': {
      // YAML reads `name: 2024` as a number; text keys take it as written.
      const out: JsonSchema = { type: ['string', 'number'] };
      if (schema.minLength !== undefined) out.minLength = schema.minLength;
      if (schema.maxLength !== undefined) out.maxLength = schema.maxLength;
      if (schema.pattern !== undefined) out.pattern = schema.case === undefined ? schema.pattern : caseInsensitivePattern(schema.pattern);
      return out;
    }
    case 'int':
      return { type: 'integer', minimum: schema.min, maximum: schema.max };
    case 'float':
      return schema.exclusiveMin === true
        ? { type: 'number', exclusiveMinimum: schema.min, maximum: schema.max }
        : { type: 'number', minimum: schema.min, maximum: schema.max };
    case 'bool':
      return { type: 'boolean' };
    case 'duration':
      // `0` may stand alone, and YAML reads it as a number.
      return { anyOf: [{ type: 'string', pattern: DURATION }, { const: 0 }] };
    case 'enum':
      return enumSchema(schema);
    case 'ip':
      return { type: 'string', pattern: `^(?:${IPV4}|${IPV6})$` };
    case 'cidr':
      return { type: 'string', pattern: `^(?:${IPV4}/(?:3[0-2]|[12]?[0-9])|${IPV6}/(?:12[0-8]|1[01][0-9]|[1-9]?[0-9]))$` };
    case 'domain':
      return { type: 'string', pattern: `^${DOMAIN}$`, maxLength: 254 };
    case 'mailbox':
      return { type: 'string', pattern: `^(?:[^@\\s.]+@)?${DOMAIN}$` };
    case 'endpoint':
      return { type: 'string', pattern: endpointPattern(schema) };
  }
}

/** Names and aliases for completion, and any spelling in any case (the validator folds case). */
function enumSchema(schema: EnumSchema): JsonSchema {
  const names = [...schema.values, ...Object.keys(schema.aliases ?? {})];
  return {
    type: 'string',
    anyOf: [{ enum: names }, { pattern: `^(?:${names.map(caseInsensitive).join('|')})$` }],
  };
}

function endpointPattern(schema: EndpointSchema): string {
  const host = schema.host === 'ip' ? `\\[${IPV6}\\]|${IPV4}` : `\\[${IPV6}\\]|[^\\s:\\[\\]]+`;
  return `^(?:${host})${schema.allowEmptyHost ? '?' : ''}:[0-9]{1,5}$`;
}

/** Writes each letter of a literal as [xX] and escapes RegExp syntax, for a case-insensitive match without flags. */
function caseInsensitive(text: string): string {
  let out = '';
  for (const c of text) {
    const lower = c.toLowerCase();
    const upper = c.toUpperCase();
    out += lower !== upper ? `[${lower}${upper}]` : c.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
  }
  return out;
}

/** Makes a pattern's letters match either case; only used for simple patterns of folded keys (character classes, quantifiers). */
function caseInsensitivePattern(pattern: string): string {
  // Inside a class, a range a-z gets A-Z beside it and a letter its other case.
  return pattern.replace(/\[([^\]]*)\]/g, (_m, body: string) => {
    const extra = body.replace(/([a-z])-([a-z])|([A-Z])-([A-Z])/g, (r: string) => (r === r.toLowerCase() ? r.toUpperCase() : r.toLowerCase()));
    return `[${body}${extra === body ? '' : extra}]`;
  });
}

/** Lets an optional key be written empty (`key:`), which the validator reads as absent. */
function nullable(schema: JsonSchema): JsonSchema {
  if (typeof schema.type === 'string') return { ...schema, type: [schema.type, 'null'] };
  if (Array.isArray(schema.type)) return { ...schema, type: [...schema.type, 'null'] };
  if (Array.isArray(schema.anyOf)) return { ...schema, anyOf: [...schema.anyOf, { type: 'null' }] };
  return { anyOf: [schema, { type: 'null' }] };
}

/** The description of a key: its doc string and the notes the docs table gives. */
function describe(schema: Schema): string {
  let text = schema.doc;
  if (schema.defaultText !== undefined) text += ` Default: ${schema.defaultText}.`;
  if (schema.requiredInMode !== undefined) text += ` Required when mode is ${schema.requiredInMode}.`;
  if (schema.onlyInMode !== undefined) text += ` Only in ${schema.onlyInMode} mode: refused in the other.`;
  if (schema.notUsedYet === true) text += ' Accepted and validated, but not used by this version yet.';
  if (schema.secret === true) text += ' Secret: a file that writes it must not be world-readable; ${VAR} keeps it out of the file.';
  return text;
}

// `node src/config/json-schema.ts` (npm run schema) rewrites the committed file.
if (import.meta.main) {
  const target = new URL(`../../${JSON_SCHEMA_FILE}`, import.meta.url);
  writeFileSync(target, formatJsonSchema(createJsonSchema()));
  process.stdout.write(`wrote ${JSON_SCHEMA_FILE}\n`);
}
