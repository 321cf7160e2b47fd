// Test helper. Starts a real overwatch in this process (real worker threads,
// real sockets on 127.0.0.1 port 0) from a YAML string validated by the same
// loader the server uses, and stops it after the test.

import type { TestContext } from 'node:test';
import { Writable } from 'node:stream';
import { parseConfigText } from '../../src/config/load.ts';
import { createLogger } from '../../src/log/logger.ts';
import { Overwatch } from '../../src/overwatch/overwatch.ts';
import { loadUdpBatch } from '../../native/udp-batch.ts';

export interface Started {
  overwatch: Overwatch;
  port: number;
  logs: string[];
}

export interface ServerOptions {
  /** 'off' (default here): every server healthy, nothing probed, for engine tests on documentation addresses; 'run': real health checks. */
  readonly healthChecks?: 'run' | 'off';
}

/** Starts an overwatch from YAML (which should listen on 127.0.0.1:0) and stops it in t.after(). */
export async function startServer(t: TestContext, yaml: string, file = 'test.yaml', options: ServerOptions = {}): Promise<Started> {
  const started = await launchServer(yaml, file, options);
  t.after(() => started.overwatch.stop(500));
  return started;
}

/** Starts an overwatch from YAML; the caller stops it (for suites that share one server across tests). */
export async function launchServer(yaml: string, file = 'test.yaml', options: ServerOptions = {}): Promise<Started> {
  const config = parseConfigText(yaml, file);
  const logs: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      logs.push(...chunk.toString('utf8').split('\n').filter(Boolean));
      done();
    },
  });
  const overwatch = await Overwatch.start(config, createLogger({ level: 'info', format: 'json' }, sink), { healthChecks: options.healthChecks ?? 'off' });
  return { overwatch, port: overwatch.port, logs };
}

const udpBatch = loadUdpBatch();

/** The `skip` of a test run on UDP path `path` (or TCP): why the batched path cannot run here (no native addon), or false. */
export function udpPathSkip(path: string): string | false {
  return path === 'batched' && udpBatch.addon === null ? `the native addon is not available (${udpBatch.reason})` : false;
}

/**
 * Starts one worker serving app.example.test (one server in region eu, zone
 * example.test) on UDP path `path` ('tcp' runs beside the default batched
 * path), `dns` being more lines of the dns section (`cookies: { require: true }`),
 * and checks the worker took that path. For the suites run once per path.
 */
export async function launchOnPath(path: 'batched' | 'dgram' | 'tcp', dns = ''): Promise<Started> {
  const server = await launchServer(`
dns:
  listen_address: "127.0.0.1:0"
  workers: 1
  zones: [example.test]
  udp_io: ${path === 'dgram' ? 'dgram' : 'auto'}
${dns === '' ? '' : `  ${dns}\n`}regions:
  - name: eu
    servers: [{ address: 192.0.2.1 }]
domains:
  - { name: app.example.test, regions: [eu] }
logging: { level: error }
`);
  const workers = server.overwatch.pool.udpIo;
  if (path !== 'tcp' && (workers.length !== 1 || workers[0]!.path !== path)) {
    await server.overwatch.stop();
    throw new Error(`the worker took the ${workers.map((w) => `${w.path} path (${w.reason})`).join(', ')}, expected the ${path} path`);
  }
  return server;
}
