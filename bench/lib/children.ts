// Bench only, main thread, cold. Spawned processes that can always be stopped:
// output drained into bounded tails, SIGTERM then SIGKILL, and a last-resort
// kill on exit so a failed or interrupted benchmark leaves no orphans.

import type { ChildProcess } from 'node:child_process';

const TAIL_BYTES = 8_192;
const KILL_GRACE_MS = 3_000;

const liveChildren = new Set<ManagedChild>();
const exitHooks: Array<() => void> = [];
let stopping = false;

/** A spawned process whose output is drained into bounded tails and which stopAll() can always stop. */
export class ManagedChild {
  readonly proc: ChildProcess;
  readonly label: string;
  readonly exited: Promise<void>;
  exitCode: number | null = null;
  exitSignal: NodeJS.Signals | null = null;
  hasExited = false;
  stdoutTail = '';
  stderrTail = '';

  constructor(label: string, proc: ChildProcess) {
    this.label = label;
    this.proc = proc;
    liveChildren.add(this);
    this.exited = new Promise((resolve) => {
      proc.once('exit', (code, signal) => {
        this.hasExited = true;
        this.exitCode = code;
        this.exitSignal = signal;
        liveChildren.delete(this);
        resolve();
      });
      // A spawn failure (ENOENT) emits 'error' and never 'exit'.
      proc.once('error', () => {
        if (this.hasExited) return;
        this.hasExited = true;
        liveChildren.delete(this);
        resolve();
      });
    });
    // Drain both pipes (a full pipe would stall the child) into bounded tails.
    proc.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
      this.stdoutTail = (this.stdoutTail + chunk).slice(-TAIL_BYTES);
    });
    proc.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
      this.stderrTail = (this.stderrTail + chunk).slice(-TAIL_BYTES);
    });
  }

  get pid(): number | undefined {
    return this.proc.pid;
  }

  /** Describes how the child ended plus the end of its output, for error messages. */
  describe(): string {
    const how = this.hasExited ? `exited (code ${this.exitCode}, signal ${this.exitSignal})` : 'still running';
    const out = this.stdoutTail.trim().split('\n').slice(-40).join('\n    ');
    const err = this.stderrTail.trim().split('\n').slice(-40).join('\n    ');
    return `${this.label} ${how}\n  stdout:\n    ${out || '(empty)'}\n  stderr:\n    ${err || '(empty)'}`;
  }

  /** Stops the child: SIGTERM, then SIGKILL after 3 s. Resolves once it has exited. */
  async stop(): Promise<void> {
    if (this.hasExited) return;
    this.proc.kill('SIGTERM');
    const timer = setTimeout(() => {
      if (!this.hasExited) this.proc.kill('SIGKILL');
    }, KILL_GRACE_MS);
    await this.exited;
    clearTimeout(timer);
  }
}

/** Registers work to do (remove temp dirs…) after every child has been stopped. */
export function onCleanup(hook: () => void): void {
  exitHooks.push(hook);
}

/** Stops every child still running, then runs the cleanup hooks. Safe to call twice. */
export async function stopAll(): Promise<void> {
  await Promise.all([...liveChildren].map((c) => c.stop()));
  while (exitHooks.length > 0) (exitHooks.pop() as () => void)();
}

/** True once SIGINT/SIGTERM arrived: the signal handler owns cleanup and the exit code. */
export function isStopping(): boolean {
  return stopping;
}

/**
 * Installs SIGINT/SIGTERM handlers that stop every child and exit 130/143,
 * and an exit hook that SIGKILLs anything left. `name` prefixes the message.
 */
export function installSignalHandlers(name: string): void {
  const onSignal = (signal: NodeJS.Signals, code: number): void => {
    if (stopping) return;
    stopping = true;
    process.stderr.write(`\n${name}: ${signal}: stopping spawned processes\n`);
    stopAll().finally(() => process.exit(code));
  };
  process.on('SIGINT', () => onSignal('SIGINT', 130));
  process.on('SIGTERM', () => onSignal('SIGTERM', 143));
  process.on('exit', () => {
    for (const child of liveChildren) child.proc.kill('SIGKILL');
  });
}
