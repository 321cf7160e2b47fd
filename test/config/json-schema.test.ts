// The JSON Schema for editors: the committed docs/config.schema.json is what
// the generator makes from the definition today, and it accepts every file in
// config/ and every YAML example in docs/ (checked with Ajv, an independent
// JSON Schema implementation). A few configs the validator refuses are refused
// by the schema too.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Ajv } from 'ajv';
import { parse } from 'yaml';
import { CONFIG_SCHEMA } from '../../src/config/definition.ts';
import { createJsonSchema, formatJsonSchema, JSON_SCHEMA_FILE } from '../../src/config/json-schema.ts';
import type { JsonSchema } from '../../src/config/json-schema.ts';
import type { Schema } from '../../src/config/schema.ts';
import { FILE_BLOCK, filesUnder, NOT_A_CONFIG, ROOT, yamlBlocks } from '../helpers/markdown.ts';

const generated = createJsonSchema();
// strict: false lets Ajv accept the draft-07 idioms YAML language servers read (type arrays beside anyOf).
const ajv = new Ajv({ strict: false, allErrors: true });
const validate = ajv.compile(generated);

/** Validates parsed YAML; returns Ajv's errors as lines, or [] when valid. */
function schemaErrors(value: unknown): string[] {
  if (validate(value)) return [];
  return (validate.errors ?? []).map((e) => `${e.instancePath || '(root)'} ${e.message ?? ''} ${JSON.stringify(e.params)}`);
}

test(`${JSON_SCHEMA_FILE} is what "npm run schema" generates from the definition today`, async () => {
  const committed = await readFile(join(ROOT, JSON_SCHEMA_FILE), 'utf8');
  assert.ok(committed === formatJsonSchema(generated), `${JSON_SCHEMA_FILE} is stale: run "npm run schema" and commit the result`);
});

test('the generated schema is a valid draft-07 JSON Schema', () => {
  assert.equal(generated.$schema, 'http://json-schema.org/draft-07/schema#');
  assert.ok(ajv.validateSchema(generated), JSON.stringify(ajv.errors));
});

/** Lists every key path of the definition (`regions[].servers[].port`; `*` for a map value). */
function definitionPaths(schema: Schema, path: string): string[] {
  switch (schema.kind) {
    case 'object':
      return Object.entries(schema.keys).flatMap(([k, child]) => {
        const p = path === '' ? k : `${path}.${k}`;
        return [p, ...definitionPaths(child, p)];
      });
    case 'list':
      return definitionPaths(schema.items, `${path}[]`);
    case 'map':
      return definitionPaths(schema.values, `${path}.*`);
    case 'oneOf':
      return schema.variants.flatMap((v) => definitionPaths(v, path));
    default:
      return [];
  }
}

/** Lists every property path of a generated schema, in the same notation. */
function jsonPaths(schema: JsonSchema, path: string): string[] {
  const out: string[] = [];
  const props = schema.properties as Record<string, JsonSchema> | undefined;
  for (const [k, child] of Object.entries(props ?? {})) {
    const p = path === '' ? k : `${path}.${k}`;
    out.push(p, ...jsonPaths(child, p));
  }
  if (typeof schema.items === 'object' && schema.items !== null) out.push(...jsonPaths(schema.items as JsonSchema, `${path}[]`));
  if (typeof schema.additionalProperties === 'object' && schema.additionalProperties !== null) {
    out.push(...jsonPaths(schema.additionalProperties as JsonSchema, `${path}.*`));
  }
  for (const variant of (schema.anyOf as JsonSchema[] | undefined) ?? []) out.push(...jsonPaths(variant, path));
  return out;
}

test('the schema has a property for every key of the definition, and no other', () => {
  const fromDefinition = [...new Set(definitionPaths(CONFIG_SCHEMA, ''))].sort();
  const fromSchema = [...new Set(jsonPaths(generated, ''))].sort();
  assert.deepEqual(fromSchema, fromDefinition);
});

for (const file of await filesUnder('config', '.yaml')) {
  test(`the schema accepts ${file}`, async () => {
    assert.deepEqual(schemaErrors(parse(await readFile(join(ROOT, file), 'utf8'))), []);
  });
}

for (const file of await filesUnder('docs', '.md')) {
  for (const block of yamlBlocks(await readFile(join(ROOT, file), 'utf8'))) {
    if (NOT_A_CONFIG.test(block.text) && !FILE_BLOCK.test(block.text)) continue;
    test(`the schema accepts the yaml example at ${file}:${block.line}`, () => {
      assert.deepEqual(schemaErrors(parse(block.text)), []);
    });
  }
}

const VALID = {
  dns: { listen_address: '127.0.0.1:0' },
  regions: [{ name: 'eu-west', servers: [{ address: '192.0.2.10' }] }],
  domains: [{ name: 'app.example.test', regions: ['eu-west'] }],
};

const cases: { name: string; config: unknown; valid: boolean }[] = [
  { name: 'accepts a minimal config', config: VALID, valid: true },
  { name: 'accepts an included file that holds only part of a config', config: { regions: VALID.regions }, valid: true },
  { name: 'accepts ${VAR} for an integer, an address and an enum', config: { ...VALID, dns: { listen_address: '${ADDR:-127.0.0.1:0}', default_ttl: '${TTL}' }, logging: { level: '${LEVEL}' } }, valid: true },
  { name: 'accepts an empty value for an optional key', config: { ...VALID, logging: { level: null } }, valid: true },
  { name: 'accepts names in any case and the aliases', config: { ...VALID, logging: { level: 'WARNING' }, domains: [{ ...VALID.domains[0], routing_algorithm: 'RR' }] }, valid: true },
  { name: 'refuses an unknown key', config: { ...VALID, dns: { listen_addr: ':53' } }, valid: false },
  { name: 'refuses a string where an integer belongs', config: { ...VALID, dns: { default_ttl: 'sixty' } }, valid: false },
  { name: 'refuses an integer out of range', config: { ...VALID, dns: { workers: 65 } }, valid: false },
  // A server needs address or cname: the loader says which (the schema lets either be absent).
  { name: 'accepts a server with a cname instead of an address', config: { ...VALID, regions: [{ name: 'eu-west', servers: [{ cname: 'eu.cdn.example.net', check_address: '192.0.2.10' }] }] }, valid: true },
  { name: 'refuses a server whose cname is not a name', config: { ...VALID, regions: [{ name: 'eu-west', servers: [{ cname: 'not a name' }] }] }, valid: false },
  { name: 'refuses a duration without a unit', config: { ...VALID, dns: { tcp_idle_timeout: '10' } }, valid: false },
  { name: 'refuses an unknown log level', config: { ...VALID, logging: { level: 'loud' } }, valid: false },
];

for (const c of cases) {
  test(`the schema ${c.name}`, () => {
    const errors = schemaErrors(c.config);
    if (c.valid) assert.deepEqual(errors, []);
    else assert.notDeepEqual(errors, []);
  });
}
