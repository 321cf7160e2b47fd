// Cold path, main thread. Walks a parsed YAML tree against a schema
// (schema.ts): reports every type, range and unknown-key problem with its
// position, applies defaults, and returns the normalised plain-value tree.
// The tree may be merged from several files (includes.ts); NodeOrigins says
// where each node was written.

import { Document, isAlias, isMap, isNode, isScalar, isSeq } from 'yaml';
import type { Alias, LineCounter, Node, Scalar, YAMLMap, YAMLSeq } from 'yaml';
import { asciiLower, asciiUpper, normaliseDomainName, normaliseMailbox } from './domain-name.ts';
import { formatDuration, parseDuration } from './duration.ts';
import { parseEndpoint } from './endpoint.ts';
import { parseCidr, parseIp } from './ip.ts';
import { unusableAddressProblem } from '../lib/ip.ts';
import { formatPath, ProblemCollector } from './problem-collector.ts';
import type { PathSegment, Pos } from './problem-collector.ts';
import type { ListSchema, MapSchema, ObjectSchema, ScalarSchema, Schema } from './schema.ts';
import type { RunMode } from './types.ts';

/** What the walk needs to know about a node beyond the node itself: where it was written and what happened to its text. */
export interface NodeOrigins {
  /** Returns where `node` starts (with its file when that is not the main file), or undefined for a node without a source. */
  locate(node: Node): Pos | undefined;
  /** Resolves an alias in the document it was written in. */
  resolve(alias: Alias): Node | undefined;
  /**
   * Returns the text a scalar had before ${VAR} expansion when expansion
   * changed it, else undefined; 'failed' when expansion failed (already reported).
   */
  expandedFrom(node: Scalar): string | 'failed' | undefined;
}

/** Creates the NodeOrigins of one parsed document: positions from its LineCounter, nothing expanded. */
export function singleDocumentOrigins(doc: Document, lineCounter: LineCounter): NodeOrigins {
  return {
    locate: (node) => (node.range ? lineCounter.linePos(node.range[0]) : undefined),
    resolve: (alias) => alias.resolve(doc),
    expandedFrom: () => undefined,
  };
}

/** Builds the nodes of schema defaults; they have no range, so positionOfNode falls back to their key's position. */
const DEFAULTS = new Document();

interface WalkContext {
  readonly origins: NodeOrigins;
  readonly sink: ProblemCollector;
  /** The file's mode, for `requiredInMode`; undefined when `mode` itself is invalid. */
  readonly mode: RunMode | undefined;
  /** True while validating a schema default: list-length limits apply to what users write, not to `[]` defaults. */
  readonly inDefault: boolean;
}

type ScalarResult = { readonly value: unknown } | { readonly error: string };

/**
 * Validates `doc` (already free of YAML syntax errors) against `schema`,
 * reporting every problem into `sink` and recording value positions there.
 * Returns the normalised tree: objects with defaults applied, lists, scalars in
 * their normal form; any value that had a problem is undefined. Never throws
 * for bad input; throws Error only if the schema's own defaults are invalid.
 */
export function validateDocument(doc: Document, lineCounter: LineCounter, schema: Schema, sink: ProblemCollector): unknown {
  return validateTree(doc.contents as Node | null, singleDocumentOrigins(doc, lineCounter), schema, sink);
}

/**
 * Validates a YAML tree whose nodes may come from several files (`origins`
 * says where each was written), exactly as validateDocument does one document.
 * Values of keys marked `secret` are listed in `sink.secrets`. `modeOverride`
 * (the --mode flag) decides the mode-dependent rules instead of the file's `mode`.
 */
export function validateTree(root: Node | null, origins: NodeOrigins, schema: Schema, sink: ProblemCollector, modeOverride?: RunMode): unknown {
  const ctx: WalkContext = { origins, sink, mode: modeOverride ?? readMode(root), inDefault: false };
  // An empty file is an empty map: every default applies and required keys are reported missing.
  if (root === null || isEmpty(root)) return walkAbsent(ctx, schema, [], { line: 1, col: 1 }, false);
  return walkPresent(ctx, root, schema, []);
}

/** Reads `mode` from the root map without reporting anything (the walk reports a bad value). */
function readMode(root: Node | null): RunMode | undefined {
  if (!isMap(root)) return 'overwatch';
  const node = root.get('mode', true);
  if (node === undefined || node === null || (isScalar(node) && node.value === null)) return 'overwatch';
  if (!isScalar(node) || typeof node.value !== 'string') return undefined;
  const mode = node.value.toLowerCase();
  return mode === 'overwatch' || mode === 'agent' ? mode : undefined;
}

/** Where a node starts in the file; nodes built from schema defaults have no range and take `fallback`. */
function positionOfNode(ctx: WalkContext, node: Node, fallback: Pos): Pos {
  return ctx.origins.locate(node) ?? fallback;
}

/** An empty value (`key:`, `key: null`, `key: ""`) counts as an absent key, as the Go original's zero values do. */
function isEmpty(node: unknown): boolean {
  return node === null || node === undefined || (isScalar(node) && (node.value === null || node.value === ''));
}

/** Validates a value that is present in the file (not empty). */
function walkPresent(ctx: WalkContext, nodeOrAlias: Node, schema: Schema, path: PathSegment[], fallback?: Pos): unknown {
  const node = isAlias(nodeOrAlias) ? (ctx.origins.resolve(nodeOrAlias) ?? nodeOrAlias) : nodeOrAlias;
  // Located once; the fallback (a walk up the path's positions) only for a node without a position.
  const located = ctx.origins.locate(nodeOrAlias);
  const pos = located ?? fallback ?? ctx.sink.positionOf(path);
  if (located !== undefined) ctx.sink.setPosition(path, pos);
  const wrongShape = (): undefined => {
    ctx.sink.report(pos, path, `got ${describe(node)}, expected ${expectText(schema)}`);
    return undefined;
  };
  switch (schema.kind) {
    case 'object':
      return isMap(node) ? walkObject(ctx, node, schema, path, pos) : wrongShape();
    case 'map':
      return isMap(node) ? walkMap(ctx, node, schema, path) : wrongShape();
    case 'list':
      return isSeq(node) ? walkList(ctx, node, schema, path, pos) : wrongShape();
    case 'oneOf': {
      const variant = schema.variants.find((v) => shapeOf(v) === (isMap(node) ? 'map' : isSeq(node) ? 'list' : 'scalar'));
      return variant === undefined ? wrongShape() : walkPresent(ctx, node, variant, path, pos);
    }
    default: {
      if (!isScalar(node)) return wrongShape();
      const from = ctx.origins.expandedFrom(node);
      // A failed ${VAR} expansion was reported where it was found; the value has no text to check.
      if (from === 'failed') return undefined;
      if (schema.secret === true && !ctx.inDefault) ctx.sink.secrets.push({ path: formatPath(path), node, pos });
      const result = parseScalar(node, schema, path, from);
      if ('error' in result) {
        ctx.sink.report(pos, path, result.error);
        return undefined;
      }
      return result.value;
    }
  }
}

/**
 * Handles a key that is absent or empty: reports it if required, else returns
 * its default (validated like user input), an empty object's defaults, or null.
 */
function walkAbsent(ctx: WalkContext, schema: Schema, path: PathSegment[], pos: Pos, insideObject: boolean): unknown {
  const requiredHere = schema.required === true || (schema.requiredInMode !== undefined && schema.requiredInMode === ctx.mode);
  if (insideObject && requiredHere) {
    const why = schema.required === true ? '' : ` (required when mode is ${schema.requiredInMode})`;
    ctx.sink.report(pos, path, `is missing, expected ${expectText(schema)}${why}`);
    return undefined;
  }
  if (schema.kind === 'object') return walkObject(ctx, null, schema, path, pos);
  if ('default' in schema && schema.default !== undefined) {
    const known = DEFAULT_VALUES.get(schema);
    if (known !== undefined) return known.value;
    // Defaults are written as a user would write them ("30s", ":53") and go through the same parser.
    const probe = new ProblemCollector('(schema default)');
    const value = walkPresent({ ...ctx, sink: probe, inDefault: true }, DEFAULTS.createNode(schema.default), schema, path, pos);
    if (probe.problems.length > 0) {
      throw new Error(`config definition bug: the default of ${formatPath(path)} is invalid: ${probe.problems[0]?.message}`);
    }
    // A plain value is the same wherever the key is absent: parsed once (10 000 regions parsed each of their defaults again).
    if (value === null || typeof value !== 'object') DEFAULT_VALUES.set(schema, { value });
    return value;
  }
  return null;
}

/** The parsed default of each schema whose default is a plain value (a string, number or boolean), by schema. */
const DEFAULT_VALUES = new WeakMap<Schema, { value: unknown }>();

function walkObject(ctx: WalkContext, node: YAMLMap | null, schema: ObjectSchema, path: PathSegment[], pos: Pos): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const given = new Map<string, { value: Node | null; keyPos: Pos }>();
  for (const pair of node?.items ?? []) {
    const keyNode = pair.key;
    // A list or map used as a key (`? [a, b]`) has a position too: report it there, not at the enclosing map.
    const keyPos = isNode(keyNode) ? positionOfNode(ctx, keyNode, pos) : pos;
    if (!isScalar(keyNode) || keyNode.value === null || typeof keyNode.value === 'object') {
      ctx.sink.report(keyPos, path, `has a key that is ${describe(keyNode)}, expected a plain key name`);
      continue;
    }
    const key = String(keyNode.value);
    const refused = schema.refusedKeys?.[key];
    if (refused !== undefined) {
      ctx.sink.report(keyPos, [...path, key], refused);
      continue;
    }
    const only = Object.hasOwn(schema.keys, key) ? schema.keys[key].onlyInMode : undefined;
    if (only !== undefined && ctx.mode !== undefined && ctx.mode !== only) {
      const why = only === 'overwatch' ? 'an agent serves no DNS and has no admin API' : 'it configures agent mode';
      ctx.sink.report(keyPos, [...path, key], `is an ${only} key, and this file runs in ${ctx.mode} mode (${why}); remove it, or run with --mode ${only}`);
      continue;
    }
    if (!Object.hasOwn(schema.keys, key)) {
      const allowed = Object.keys(schema.keys);
      const near = nearest(key, allowed);
      const hint = near === null ? '' : ` (did you mean "${near}"?)`;
      ctx.sink.report(keyPos, [...path, key], `unknown key "${key}"${hint}, expected one of ${allowed.join(', ')}`);
      continue;
    }
    given.set(key, { value: (pair.value as Node | null) ?? null, keyPos });
  }
  for (const [key, child] of Object.entries(schema.keys)) {
    const entry = given.get(key);
    const childPath = [...path, key];
    if (entry !== undefined) ctx.sink.setPosition(childPath, entry.keyPos);
    if (entry === undefined || isEmpty(entry.value)) {
      out[key] = walkAbsent(ctx, child, childPath, entry?.keyPos ?? pos, true);
    } else {
      out[key] = walkPresent(ctx, entry.value as Node, child, childPath);
    }
  }
  return out;
}

function walkMap(ctx: WalkContext, node: YAMLMap, schema: MapSchema, path: PathSegment[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const pair of node.items) {
    const keyNode = pair.key;
    if (!isScalar(keyNode) || keyNode.value === null || typeof keyNode.value === 'object') {
      const at = isNode(keyNode) ? positionOfNode(ctx, keyNode, ctx.sink.positionOf(path)) : ctx.sink.positionOf(path);
      ctx.sink.report(at, path, `has a key that is ${describe(keyNode)}, expected a ${schema.keyNoun}`);
      continue;
    }
    const key = String(keyNode.value);
    const childPath = [...path, key];
    const keyPos = ctx.origins.locate(keyNode) ?? ctx.sink.positionOf(path);
    if (isEmpty(pair.value)) {
      ctx.sink.report(keyPos, childPath, `is empty, expected ${expectText(schema.values)}`);
      continue;
    }
    out[key] = walkPresent(ctx, pair.value as Node, schema.values, childPath);
  }
  return out;
}

function walkList(ctx: WalkContext, node: YAMLSeq, schema: ListSchema, path: PathSegment[], pos: Pos): unknown[] {
  const out: unknown[] = [];
  const seen = new Map<string, number>();
  node.items.forEach((item, i) => {
    const itemPath = [...path, i];
    if (isEmpty(item)) {
      const itemPos = isScalar(item) ? positionOfNode(ctx, item, pos) : pos;
      ctx.sink.report(itemPos, itemPath, `is empty, expected ${expectText(schema.items)}`);
      out.push(undefined);
      return;
    }
    const value = walkPresent(ctx, item as Node, schema.items, itemPath);
    out.push(value);
    if (schema.uniqueItems === true && value !== undefined) {
      const key = uniqueKey(value);
      const first = seen.get(key);
      if (first === undefined) {
        seen.set(key, i);
      } else {
        const where = ctx.sink.lineRef(ctx.sink.positionOf([...path, first]), ctx.sink.positionOf(itemPath));
        ctx.sink.reportAt(
          itemPath,
          `${JSON.stringify(key)} is listed twice (first at ${where}), expected each ${schema.itemNoun ?? 'item'} once`,
        );
      }
    }
  });
  const count = node.items.length;
  if (ctx.inDefault) return out;
  if (schema.minItems !== undefined && count < schema.minItems) {
    ctx.sink.report(pos, path, `has ${count} ${count === 1 ? 'item' : 'items'}, expected at least ${schema.minItems}`);
  }
  if (schema.maxItems !== undefined && count > schema.maxItems) {
    ctx.sink.report(pos, path, `has ${count} items, expected at most ${schema.maxItems}`);
  }
  return out;
}

/** The comparison key of a scalar value for `uniqueItems`. */
function uniqueKey(value: unknown): string {
  if (typeof value === 'object' && value !== null && 'address' in value) return String(value.address);
  return String(value);
}

function shapeOf(schema: Schema): 'map' | 'list' | 'scalar' {
  if (schema.kind === 'object' || schema.kind === 'map') return 'map';
  return schema.kind === 'list' ? 'list' : 'scalar';
}

/** Describes a node for messages: quoted text, a bare number or boolean, "a map", "a list". */
function describe(node: unknown): string {
  if (isMap(node)) return 'a map';
  if (isSeq(node)) return 'a list';
  if (isScalar(node)) {
    if (node.value === null) return 'an empty value';
    if (typeof node.value === 'string') return JSON.stringify(node.value);
    return sourceText(node);
  }
  return 'an unsupported YAML node';
}

/** The text a plain scalar was written as ("08", "1.10"), falling back to its value. */
function sourceText(node: Scalar): string {
  return node.source ?? String(node.value);
}

/** Returns the text of a scalar for string-like kinds; numbers keep their written form. Null for booleans. */
function textOf(node: Scalar): string | null {
  const v = node.value;
  if (typeof v === 'string') return v;
  if (typeof v === 'number' || typeof v === 'bigint') return sourceText(node);
  return null;
}

/** Describes in words what a schema accepts, for the "expected …" half of messages. */
export function expectText(schema: Schema): string {
  switch (schema.kind) {
    case 'object':
      return `a map with the keys ${Object.keys(schema.keys).join(', ')}`;
    case 'map':
      return `a map from ${schema.keyNoun} to ${expectText(schema.values)}`;
    case 'list':
      return schema.itemNoun === undefined ? `a list of ${expectText(schema.items)}` : `a list of ${plural(schema.itemNoun)}`;
    case 'oneOf':
      return schema.variants.map(expectText).join(' or ');
    case 'string':
      return schema.patternText ?? 'text';
    case 'int':
      return `an integer from ${schema.min} to ${schema.max}`;
    case 'float':
      return schema.exclusiveMin === true
        ? `a number greater than ${schema.min} and at most ${schema.max}`
        : `a number from ${schema.min} to ${schema.max}`;
    case 'bool':
      return 'true or false';
    case 'duration': {
      const range = schema.min !== undefined && schema.max !== undefined
        ? ` from ${schema.min} to ${schema.max}`
        : schema.min !== undefined ? ` of at least ${schema.min}` : schema.max !== undefined ? ` of at most ${schema.max}` : '';
      return `a duration${range} with a unit, such as "30s"`;
    }
    case 'enum':
      return `one of ${schema.values.join(', ')}`;
    case 'ip':
      return 'an IPv4 or IPv6 literal';
    case 'cidr':
      return 'a CIDR prefix such as "10.0.0.0/8"';
    case 'domain':
      return 'a domain name such as "app.example.com"';
    case 'mailbox':
      return 'a mailbox such as "hostmaster@example.com"';
    case 'endpoint':
      return schema.allowEmptyHost ? 'HOST:PORT or :PORT' : 'HOST:PORT';
  }
}

function plural(noun: string): string {
  return /(s|x)$/.test(noun) ? `${noun}es` : `${noun}s`;
}

/** Parses one scalar node for a scalar schema; returns the normal-form value or the message. */
function parseScalar(node: Scalar, schema: ScalarSchema, path: readonly PathSegment[], expandedFrom: string | undefined): ScalarResult {
  const result = parseScalarValue(node, schema, path, expandedFrom !== undefined);
  // Say where an expanded value came from, unless that would show a secret's default.
  if ('error' in result && expandedFrom !== undefined && schema.secret !== true) {
    return { error: `${result.error} (after expanding ${JSON.stringify(expandedFrom)})` };
  }
  return result;
}

/**
 * Matches what YAML 1.2's core schema reads as a number (decimal, float, 0o
 * octal, 0x hex), for expanded text; Number() reads each form the same way.
 * An integer key takes any of them, as it does written plainly (`16.0` is 16).
 */
const EXPANDED_NUMBER = /^(?:[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?|0o[0-7]+|0x[0-9a-fA-F]+)$/;

function parseScalarValue(node: Scalar, schema: ScalarSchema, path: readonly PathSegment[], expanded: boolean): ScalarResult {
  // A secret is never quoted in a message: it would end up in logs.
  const desc = schema.secret === true ? 'the secret value' : describe(node);
  let v = node.value;
  if (expanded && typeof v === 'string') {
    // ${VAR} always expands to text; an integer, number or boolean key reads
    // that text as YAML would have read it written plainly.
    if (schema.kind === 'bool' && /^(true|false)$/i.test(v)) v = v.toLowerCase() === 'true';
    else if ((schema.kind === 'int' || schema.kind === 'float') && EXPANDED_NUMBER.test(v)) v = Number(v);
  }
  switch (schema.kind) {
    case 'bool':
      return typeof v === 'boolean' ? { value: v } : { error: `${desc} is not a boolean, expected true or false` };
    case 'int':
    case 'float': {
      const isInt = schema.kind === 'int';
      if (typeof v !== 'number' || !Number.isFinite(v) || (isInt && !Number.isSafeInteger(v))) {
        return { error: `${desc} is not ${isInt ? 'an integer' : 'a number'}, expected ${expectText(schema)}` };
      }
      const tooLow = schema.kind === 'float' && schema.exclusiveMin === true ? v <= schema.min : v < schema.min;
      if (tooLow || v > schema.max) return { error: `${desc} is out of range, expected ${expectText(schema)}` };
      return { value: v };
    }
    default:
      break;
  }
  const text = textOf(node);
  if (text === null) return { error: `${desc} is not text, expected ${expectText(schema)} (quote it if you meant the word)` };
  const quoted = schema.secret === true ? desc : JSON.stringify(text);
  switch (schema.kind) {
    case 'string': {
      // ASCII case only, so the pattern below sees what was written ("\u0131e" must not become "IE").
      const value = schema.case === 'upper' ? asciiUpper(text) : schema.case === 'lower' ? asciiLower(text) : text;
      if (schema.minLength !== undefined && value.length < schema.minLength) {
        return { error: `${quoted} is too short, expected at least ${schema.minLength} characters` };
      }
      if (schema.maxLength !== undefined && value.length > schema.maxLength) {
        return { error: `${quoted} is too long, expected at most ${schema.maxLength} characters` };
      }
      if (schema.pattern !== undefined && !new RegExp(schema.pattern).test(value)) {
        return { error: `${quoted} is invalid, expected ${expectText(schema)}` };
      }
      return { value };
    }
    case 'duration': {
      const parsed = parseDuration(text);
      if ('error' in parsed) return parsed;
      if (schema.wholeSeconds === true && parsed.ms % 1000 !== 0) {
        return { error: `${quoted} is not a whole number of seconds, expected ${expectText(schema)}` };
      }
      const min = schema.min === undefined ? undefined : msOf(schema.min);
      const max = schema.max === undefined ? undefined : msOf(schema.max);
      if ((min !== undefined && parsed.ms < min) || (max !== undefined && parsed.ms > max)) {
        return { error: `${quoted} (${formatDuration(parsed.ms)}) is out of range, expected ${expectText(schema)}` };
      }
      return { value: parsed.ms };
    }
    case 'enum': {
      const lower = text.toLowerCase();
      const canonical = schema.values.find((name) => name.toLowerCase() === lower) ?? schema.aliases?.[lower];
      if (canonical !== undefined) return { value: canonical };
      const key = path[path.length - 1];
      if (schema.notYet?.includes(lower) === true) {
        return { error: `${typeof key === 'string' ? key : schema.noun} ${quoted} is not available yet in this version; expected one of ${schema.values.join(', ')}` };
      }
      return { error: `${quoted} is not a known ${schema.noun}, expected one of ${schema.values.join(', ')}` };
    }
    case 'ip': {
      // Every ip key is an address answered or probed, so one that cannot be either is refused here.
      const parsed = parseIp(text);
      if ('error' in parsed) return parsed;
      const unusable = unusableAddressProblem(parsed.address);
      return unusable === null ? { value: parsed } : { error: unusable };
    }
    case 'cidr': {
      const parsed = parseCidr(text);
      return 'error' in parsed ? parsed : { value: parsed.cidr };
    }
    case 'domain': {
      const parsed = normaliseDomainName(text);
      if ('error' in parsed && schema.portless === true) {
        const port = /^(.+)(:\d{1,5})$/.exec(text);
        if (port !== null && !('error' in normaliseDomainName(port[1]))) {
          return { error: `${quoted} has a port (${JSON.stringify(port[2])}), expected the host name alone: leave out the port, a name matches with any port` };
        }
      }
      return 'error' in parsed ? parsed : { value: parsed.name };
    }
    case 'mailbox': {
      const parsed = normaliseMailbox(text);
      return 'error' in parsed ? parsed : { value: parsed.name };
    }
    case 'endpoint': {
      const parsed = parseEndpoint(text, schema);
      return 'error' in parsed ? parsed : { value: parsed };
    }
  }
}

/** Parses a duration limit from the definition; a bad one is a bug in the definition. */
function msOf(text: string): number {
  const parsed = parseDuration(text);
  if ('error' in parsed) throw new Error(`config definition bug: bad duration limit ${JSON.stringify(text)}`);
  return parsed.ms;
}

/** Returns the allowed key closest to `key` (at most 2 edits, ignoring case), else one it abbreviates ("listen_addr"), or null. */
function nearest(key: string, allowed: readonly string[]): string | null {
  const lower = key.toLowerCase();
  let best: string | null = null;
  let bestDistance = 3;
  for (const candidate of allowed) {
    const d = editDistance(lower, candidate);
    if (d < bestDistance) {
      best = candidate;
      bestDistance = d;
    }
  }
  if (best !== null || lower.length < 4) return best;
  return allowed.find((candidate) => candidate.startsWith(lower)) ?? null;
}

/** Levenshtein distance with one rolling row. */
function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let diagonal = row[0] ?? 0;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const above = row[j] ?? 0;
      row[j] = Math.min(above + 1, (row[j - 1] ?? 0) + 1, diagonal + (a[i - 1] === b[j - 1] ? 0 : 1));
      diagonal = above;
    }
  }
  return row[b.length] ?? 0;
}
