// Main thread, cold path. How a process stops on SIGTERM/SIGINT: once (a
// second signal while stopping changes nothing), with the clean stop under a
// deadline and a last-resort timer that exits anyway, logging each step.

import type { Logger } from '../log/logger.ts';

export interface ShutdownPlan {
  /** Logged when the stop begins: what a clean stop does. */
  announce: string;
  /** After this many milliseconds the process exits with 1 whatever the stop is doing. */
  deadlineMs: number;
  /** The clean stop; resolved means everything is closed. */
  stop: (signal: string) => Promise<unknown>;
}

/** Returns the signal handler that stops the process by `plan`, at most once. */
export function shutdownOnce(logger: Logger, plan: ShutdownPlan): (signal: string) => void {
  let stopping = false;
  return (signal) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, plan.announce);
    const hard = setTimeout(() => {
      logger.error(`stop did not finish within ${plan.deadlineMs / 1000} s; exiting without a clean stop`);
      logger.flush?.();
      process.exit(1);
    }, plan.deadlineMs);
    hard.unref();
    plan.stop(signal).then(
      () => {
        logger.info('stopped');
        logger.flush?.();
        process.exit(0);
      },
      (err: Error) => {
        logger.error({ err: err.message }, 'error while stopping');
        process.exit(1);
      },
    );
  };
}
