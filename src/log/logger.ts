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

/**
 * Keeps the running server up when its log stream fails: the reader of a
 * pipe goes away (`opengslb | tee` with tee killed, a log shipper restarted)
 * and Node emits EPIPE on the stream, which without a listener ends the
 * process. Answering DNS matters more than the log: the rest of the log is
 * dropped, and stderr says so once for each kind of error (when it can; an
 * error writing that is ignored too).
 */
export function dropLogOnStreamError(stream: NodeJS.WritableStream, report: NodeJS.WritableStream = process.stderr): void {
  const told = new Set<string>();
  if (report !== stream && report.listenerCount('error') === 0) report.on('error', () => {});
  stream.on('error', (err: NodeJS.ErrnoException) => {
    const code = err.code ?? err.message;
    if (told.has(code)) return;
    told.add(code);
    report.write(`opengslb: the log stream failed (${code}: ${err.message}); log lines are dropped from now on, DNS goes on serving\n`);
  });
}
