// Test helper. Runs Debian's nats-server (with JetStream) on loopback for the
// bus tests, and says clearly when it is not installed.

import type { TestContext } from 'node:test';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { Lines, reapAfter } from './child.ts';

/** nats-server from PATH or Debian's /usr/sbin, or null. */
function natsServerBinary(): string | null {
  for (const dir of [...(process.env.PATH ?? '').split(':'), '/usr/sbin', '/usr/local/sbin']) {
    if (dir !== '' && existsSync(join(dir, 'nats-server'))) return join(dir, 'nats-server');
  }
  return null;
}

export const NATS_SERVER = natsServerBinary();
/** The `skip` option of a test that needs nats-server. */
export const needsNats = NATS_SERVER === null ? 'nats-server is not installed (Debian package nats-server; .ci/run installs it)' : false;

export interface RunningNats {
  readonly child: ChildProcess;
  readonly url: string;
  /** SIGTERM, and resolves once it exited. */
  stop(): Promise<void>;
}

/** Starts nats-server with JetStream (unless `opts.jetStream` is false) on 127.0.0.1:`port`, storing in `dir`; resolves once it accepts clients; killed after the test. */
export async function startNats(t: TestContext, port: number, dir: string, opts: { readonly jetStream?: boolean } = {}): Promise<RunningNats> {
  const args = ['-a', '127.0.0.1', '-p', String(port), ...(opts.jetStream === false ? [] : ['-js', '-sd', dir])];
  const child = spawn(NATS_SERVER!, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  const exited = reapAfter(t, child);
  const err = new Lines(child.stderr!);
  new Lines(child.stdout!);
  try {
    await err.waitFor(/Server is ready/, 0, 10_000);
  } catch (e) {
    throw new Error(`nats-server did not start: ${(e as Error).message}\n${err.text}`);
  }
  return {
    child,
    url: `nats://127.0.0.1:${port}`,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      await exited;
    },
  };
}
