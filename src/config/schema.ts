// Cold path, main thread. A small declarative schema language for the config
// file: every key's type, doc string, default and limits are plain data, so the
// validator (validate.ts), the docs test and the JSON Schema generator
// (json-schema.ts) all read the same definition (definition.ts).

import type { Endpoint } from './endpoint.ts';
import type { IpAddress } from './ip.ts';
import type { RunMode } from './types.ts';

/** Properties every schema node carries. */
export interface SchemaCommon {
  /** One or two sentences for the docs and the generated JSON Schema. */
  readonly doc: string;
  /** The key must be present (and not empty) wherever its parent is. */
  readonly required?: boolean;
  /** The key must be present when the file's `mode` is this one. */
  readonly requiredInMode?: RunMode;
  /** The key belongs to this mode only: a file of the other mode that writes it is refused, saying so. */
  readonly onlyInMode?: RunMode;
  /** Describes a default that is computed rather than fixed ("dns.default_ttl", "the first name server"). */
  readonly defaultText?: string;
  /** Accepted and validated for compatibility with the Go original, but not used by this version yet. */
  readonly notUsedYet?: boolean;
  /**
   * The value is a secret (a key or token): a file that writes it must not be
   * world-readable (permissions.ts), and messages never quote it.
   */
  readonly secret?: boolean;
}

/** A string; `case` folds it, `pattern` (a RegExp source) restricts it and `patternText` explains the restriction. */
export interface StringSchema extends SchemaCommon {
  readonly kind: 'string';
  readonly default?: string;
  readonly minLength?: number;
  readonly maxLength?: number;
  readonly pattern?: string;
  readonly patternText?: string;
  readonly case?: 'upper' | 'lower';
}

/** A whole number in [min, max]. */
export interface IntSchema extends SchemaCommon {
  readonly kind: 'int';
  readonly default?: number;
  readonly min: number;
  readonly max: number;
}

/** A number in [min, max], or (min, max] with `exclusiveMin`. */
export interface FloatSchema extends SchemaCommon {
  readonly kind: 'float';
  readonly default?: number;
  readonly min: number;
  readonly max: number;
  readonly exclusiveMin?: boolean;
}

/** true or false. */
export interface BoolSchema extends SchemaCommon {
  readonly kind: 'bool';
  readonly default?: boolean;
}

/**
 * A Go duration string; the value is whole milliseconds. `default`, `min` and
 * `max` are written as duration strings too. `wholeSeconds` refuses fractions
 * of a second (SOA timers are seconds on the wire).
 */
export interface DurationSchema extends SchemaCommon {
  readonly kind: 'duration';
  readonly default?: string;
  readonly min?: string;
  readonly max?: string;
  readonly wholeSeconds?: boolean;
}

/**
 * One of `values`, matched case-insensitively; the value is the canonical
 * spelling. `aliases` maps other accepted spellings (lower-case) to a value.
 * `notYet` lists names the Go original accepts that this version cannot serve
 * yet: they get their own message. `noun` names the thing in messages.
 */
export interface EnumSchema extends SchemaCommon {
  readonly kind: 'enum';
  readonly values: readonly string[];
  readonly noun: string;
  readonly default?: string;
  readonly aliases?: Readonly<Record<string, string>>;
  readonly notYet?: readonly string[];
}

/** An IPv4 or IPv6 literal; the value is normalised (see ip.ts). */
export interface IpSchema extends SchemaCommon {
  readonly kind: 'ip';
}

/** A CIDR prefix such as "10.0.0.0/8". */
export interface CidrSchema extends SchemaCommon {
  readonly kind: 'cidr';
  readonly default?: string;
}

/** A domain name; the value is lower-case without the trailing dot. */
export interface DomainSchema extends SchemaCommon {
  readonly kind: 'domain';
  readonly default?: string;
  /** A host name matched whatever the port (api.allowed_hosts): "NAME:PORT" gets "leave out the port" instead of the generic label error. */
  readonly portless?: boolean;
}

/** An SOA RNAME mailbox, as a domain name or an e-mail address. */
export interface MailboxSchema extends SchemaCommon {
  readonly kind: 'mailbox';
}

/** HOST:PORT (see endpoint.ts); `host` says whether names are allowed besides IP literals. */
export interface EndpointSchema extends SchemaCommon {
  readonly kind: 'endpoint';
  readonly default?: string;
  readonly host: 'ip' | 'name';
  readonly allowEmptyHost: boolean;
  readonly minPort: number;
}

/** A list of `items`; `uniqueItems` refuses two scalar items with the same normalised value. */
export interface ListSchema extends SchemaCommon {
  readonly kind: 'list';
  readonly items: Schema;
  readonly default?: readonly unknown[];
  readonly minItems?: number;
  readonly maxItems?: number;
  readonly uniqueItems?: boolean;
  /** What one item is, for messages ("region name"). */
  readonly itemNoun?: string;
}

/**
 * A map with a fixed set of keys; any other key is an error that lists these.
 * `refusedKeys` maps keys that are recognised but refused to the message given.
 * An absent object is validated as an empty one, so its keys' defaults apply.
 */
export interface ObjectSchema extends SchemaCommon {
  readonly kind: 'object';
  readonly keys: Readonly<Record<string, Schema>>;
  readonly refusedKeys?: Readonly<Record<string, string>>;
}

/** A map with free-form keys (`keyNoun` names them) and values of one schema. */
export interface MapSchema extends SchemaCommon {
  readonly kind: 'map';
  readonly keyNoun: string;
  readonly values: Schema;
}

/**
 * Either of several schemas, picked by the YAML node's shape: a scalar takes
 * the first scalar variant, a map the first object/map variant, a list the
 * first list variant.
 */
export interface OneOfSchema extends SchemaCommon {
  readonly kind: 'oneOf';
  readonly variants: readonly Schema[];
}

/** Any schema whose value is one YAML scalar. */
export type ScalarSchema =
  | StringSchema
  | IntSchema
  | FloatSchema
  | BoolSchema
  | DurationSchema
  | EnumSchema
  | IpSchema
  | CidrSchema
  | DomainSchema
  | MailboxSchema
  | EndpointSchema;

/** Any schema node. */
export type Schema = ScalarSchema | ListSchema | ObjectSchema | MapSchema | OneOfSchema;

type Options<S> = Omit<S, 'kind'>;

/** Defines a string key. */
export function str<const O extends Options<StringSchema>>(o: O): O & { readonly kind: 'string' } {
  return { ...o, kind: 'string' };
}
/** Defines an integer key with inclusive bounds. */
export function int<const O extends Options<IntSchema>>(o: O): O & { readonly kind: 'int' } {
  return { ...o, kind: 'int' };
}
/** Defines a number key. */
export function float<const O extends Options<FloatSchema>>(o: O): O & { readonly kind: 'float' } {
  return { ...o, kind: 'float' };
}
/** Defines a boolean key. */
export function bool<const O extends Options<BoolSchema>>(o: O): O & { readonly kind: 'bool' } {
  return { ...o, kind: 'bool' };
}
/** Defines a duration key (value in milliseconds). */
export function duration<const O extends Options<DurationSchema>>(o: O): O & { readonly kind: 'duration' } {
  return { ...o, kind: 'duration' };
}
/** Defines a key holding one of a fixed set of names. */
export function choice<const O extends Options<EnumSchema>>(o: O): O & { readonly kind: 'enum' } {
  return { ...o, kind: 'enum' };
}
/** Defines an IP literal key. */
export function ip<const O extends Options<IpSchema>>(o: O): O & { readonly kind: 'ip' } {
  return { ...o, kind: 'ip' };
}
/** Defines a CIDR prefix key. */
export function cidr<const O extends Options<CidrSchema>>(o: O): O & { readonly kind: 'cidr' } {
  return { ...o, kind: 'cidr' };
}
/** Defines a domain name key. */
export function domain<const O extends Options<DomainSchema>>(o: O): O & { readonly kind: 'domain' } {
  return { ...o, kind: 'domain' };
}
/** Defines an SOA mailbox key. */
export function mailbox<const O extends Options<MailboxSchema>>(o: O): O & { readonly kind: 'mailbox' } {
  return { ...o, kind: 'mailbox' };
}
/** Defines a HOST:PORT key. */
export function endpoint<const O extends Options<EndpointSchema>>(o: O): O & { readonly kind: 'endpoint' } {
  return { ...o, kind: 'endpoint' };
}
/** Defines a list key. */
export function list<const O extends Options<ListSchema>>(o: O): O & { readonly kind: 'list' } {
  return { ...o, kind: 'list' };
}
/** Defines a map with fixed keys. */
export function object<const O extends Options<ObjectSchema>>(o: O): O & { readonly kind: 'object' } {
  return { ...o, kind: 'object' };
}
/** Defines a map with free-form keys. */
export function map<const O extends Options<MapSchema>>(o: O): O & { readonly kind: 'map' } {
  return { ...o, kind: 'map' };
}
/** Defines a key that takes one of several shapes. */
export function oneOf<const O extends Options<OneOfSchema>>(o: O): O & { readonly kind: 'oneOf' } {
  return { ...o, kind: 'oneOf' };
}

/**
 * The validated value a schema produces, with defaults applied: objects are
 * always present; a key with neither a default nor `required` may be null
 * (absent or empty in the file).
 */
export type Value<S> = S extends { readonly kind: 'object'; readonly keys: infer K }
  ? { readonly [P in keyof K]: FieldValue<K[P]> }
  : S extends { readonly kind: 'list'; readonly items: infer I }
    ? readonly Value<I>[]
    : S extends { readonly kind: 'map'; readonly values: infer V }
      ? Readonly<Record<string, Value<V>>>
      : S extends { readonly kind: 'oneOf'; readonly variants: readonly (infer V)[] }
        ? Value<V>
        : ScalarValue<S>;

type FieldValue<S> = S extends { readonly default: unknown } | { readonly required: true } | { readonly kind: 'object' }
  ? Value<S>
  : Value<S> | null;

type ScalarValue<S> = S extends { readonly kind: 'int' | 'float' | 'duration' }
  ? number
  : S extends { readonly kind: 'bool' }
    ? boolean
    : S extends { readonly kind: 'endpoint' }
      ? Endpoint
      : S extends { readonly kind: 'ip' }
        ? IpAddress
        : S extends { readonly kind: 'enum'; readonly values: readonly (infer E)[] }
          ? E
          : string;

/**
 * What the cross-checks see before they know the file is valid: any value may
 * be undefined (it was invalid, and a problem was already reported for it).
 */
export type Unchecked<S> = S extends { readonly kind: 'object'; readonly keys: infer K }
  ? { readonly [P in keyof K]: Unchecked<K[P]> | null | undefined }
  : S extends { readonly kind: 'list'; readonly items: infer I }
    ? readonly (Unchecked<I> | undefined)[]
    : S extends { readonly kind: 'map'; readonly values: infer V }
      ? Readonly<Record<string, Unchecked<V> | undefined>>
      : S extends { readonly kind: 'oneOf'; readonly variants: readonly (infer V)[] }
        ? Unchecked<V>
        : ScalarValue<S>;
