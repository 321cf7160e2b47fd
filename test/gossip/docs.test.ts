// docs/agents.md keeps step with the code: one table row per drop reason with
// the meaning the code gives it, and every message type described.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { DROP_REASONS } from '../../src/gossip/drop-reasons.ts';
import { MESSAGE_TYPES } from '../../src/gossip/messages.ts';
import { DEFAULT_UDP_MAX_BYTES } from '../../src/gossip/sender.ts';
import { REPLAY_WINDOW } from '../../src/gossip/replay.ts';
import { ENVELOPE_HEADER_LEN } from '../../src/gossip/envelope.ts';

const docs = await readFile(new URL('../../docs/agents.md', import.meta.url), 'utf8');
const rows = new Map([...docs.matchAll(/^\| `([a-z_]+)` \| (.+) \|$/gm)].map((m) => [m[1], m[2]]));

test('docs/agents.md has a row for every drop reason, with the meaning drop-reasons.ts gives it', () => {
  for (const [reason, meaning] of Object.entries(DROP_REASONS)) {
    assert.equal(rows.get(reason), meaning, `drop reason ${reason}`);
  }
});

test('docs/agents.md documents every message type in the message table', () => {
  for (const type of MESSAGE_TYPES) assert.match(docs, new RegExp(`^\\| \`${type}\` \\|`, 'm'), type);
});

test('docs/agents.md states the limits the code uses', () => {
  assert.ok(docs.includes(`${DEFAULT_UDP_MAX_BYTES.toLocaleString('en').replace(',', ' ')} bytes`), 'UDP size');
  assert.ok(docs.includes(`last ${REPLAY_WINDOW.toLocaleString('en').replace(',', ' ')} numbers`), 'replay window');
  assert.ok(docs.includes(`| ${ENVELOPE_HEADER_LEN} | n | ciphertext`), 'header length');
});
