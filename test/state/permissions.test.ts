// The state directory holds private keys (DNSSEC, the bus's sealed entries):
// the overwatch makes it mode 700 and its files 600 at every start, and the
// systemd units and docs/install.md say the same mode, so what an operator
// reads (or systemd creates) is what the server keeps.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { chmod, mkdir, readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { DATA_DIR_MODE, DATA_FILE_MODE, LmdbStore } from '../../src/state/store.ts';
import { posixOnly, tempDir } from '../helpers/config-files.ts';
import { ROOT } from '../helpers/markdown.ts';

test('the state directory is made mode 700 and its files 600, also when it exists with mode 750 as systemd used to create it', posixOnly, async (t) => {
  const parent = await tempDir(t, 'opengslb-perm-');
  for (const [name, existing] of [['fresh', null], ['systemd', 0o750]] as const) {
    const dir = join(parent, name);
    if (existing !== null) {
      await mkdir(dir);
      await chmod(dir, existing);
    }
    const store = LmdbStore.open(dir);
    await store.close();
    assert.equal((await stat(dir)).mode & 0o777, 0o700, `${name}: the directory`);
    for (const f of await readdir(dir)) assert.equal((await stat(join(dir, f))).mode & 0o777, 0o600, `${name}: ${f}`);
  }
  assert.equal(DATA_DIR_MODE, 0o700);
  assert.equal(DATA_FILE_MODE, 0o600);
});

test('the systemd units and docs/install.md give the state directory the mode the server keeps (700)', () => {
  const mode = DATA_DIR_MODE.toString(8);
  for (const unit of ['opengslb-overwatch.service', 'opengslb-agent.service']) {
    const text = readFileSync(join(ROOT, 'deploy/systemd', unit), 'utf8');
    assert.match(text, new RegExp(`^StateDirectoryMode=0${mode}$`, 'm'), unit);
  }
  const install = readFileSync(join(ROOT, 'docs/install.md'), 'utf8');
  const said = /`StateDirectory=opengslb`[^]*?\(mode (\d+)\b/.exec(install);
  assert.equal(said?.[1], mode, 'docs/install.md on StateDirectory=opengslb');
});
