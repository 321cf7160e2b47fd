// Main thread, cold path. The pino logger factory: JSON lines by default, or
// one human-readable line per record with `logging.format: text`. Components
// get child loggers with a `component` binding; workers never log.

import { Writable } from 'node:stream';
import { pino, type Logger } from 'pino';
import type { LoggingConfig } from '../config/types.ts';

export type { Logger };

/** Renders pino's JSON records as `TIME LEVEL [component] msg key=value …`. */
function textStream(out: NodeJS.WritableStream): Writable {
  return new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString('utf8').split('\n')) {
        if (line === '') continue;
        try {
          const { time, level, msg, component, ...rest } = JSON.parse(line) as Record<string, unknown>;
          const fields = Object.entries(rest)
            .map(([k, v]) => `${k}=${typeof v === 'string' ? (/\s/.test(v) ? JSON.stringify(v) : v) : JSON.stringify(v)}`)
            .join(' ');
          const comp = component ? ` [${String(component)}]` : '';
          out.write(`${String(time)} ${String(level).toUpperCase().padEnd(5)}${comp} ${String(msg ?? '')}${fields ? ' ' + fields : ''}\n`);
        } catch {
          out.write(line + '\n');
        }
      }
      done();
    },
  });
}

/**
 * Creates the process logger. `destination` defaults to stdout; tests pass a
 * stream to read the lines back.
 */
export function createLogger(config: LoggingConfig, destination: NodeJS.WritableStream = process.stdout): Logger {
  const options = {
    level: config.level,
    base: undefined,
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label: string) => ({ level: label }) },
  };
  if (config.format === 'text') return pino(options, textStream(destination));
  return pino(options, destination as unknown as pino.DestinationStream);
}
