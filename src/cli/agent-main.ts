// Main thread, cold path. `opengslb --mode agent`: starts the agent and its
// metrics listener, and stops it on SIGTERM/SIGINT (deregistration first, so
// the overwatches drop its backends at once), exit 0. SIGHUP is logged and
// ignored: an agent's config changes with a restart.

import type { Config } from '../config/types.ts';
import { formatAddress } from '../lib/ip.ts';
import type { Logger } from '../log/logger.ts';
import type { MetricsListener } from '../metrics/server.ts';
import { Agent, STOP_DEADLINE_MS } from '../agent/agent.ts';
import { shutdownOnce } from './shutdown.ts';

/** Prints one line and exits (start-up failures). */
function fail(message: string): never {
  process.stderr.write(`opengslb: ${message}\n`);
  process.exit(1);
}

/** How runAgent reports its progress to the process's signal handling (src/cli/opengslb-main.ts). */
export interface AgentSignals {
  /** The agent has started registering: from here a stop deregisters it. */
  started(): void;
  /** Hands over the signal handler once the agent runs (signals that came earlier are replayed then). */
  listen(handler: (signal: string) => void): void;
}

/** Runs agent mode until a signal stops it. */
export async function runAgent(config: Config, logger: Logger, version: string, signals: AgentSignals): Promise<void> {
  let agent: Agent;
  try {
    agent = await Agent.start(config, logger, { version });
  } catch (err) {
    logger.flush?.();
    fail(err instanceof Error ? err.message : String(err));
  }
  signals.started();
  let metricsListener: MetricsListener | null = null;
  if (config.metrics.enabled) {
    try {
      const { createAgentMetrics } = await import('../agent/metrics.ts');
      const { startMetricsServer } = await import('../metrics/server.ts');
      metricsListener = await startMetricsServer(createAgentMetrics(agent, { version }), config.metrics.host, config.metrics.port, logger);
    } catch (err) {
      await agent.stop('could not start the metrics listener');
      fail(`cannot start the metrics listener on ${formatAddress(config.metrics.host, config.metrics.port)} (metrics.address): ${(err as Error).message}`);
    }
  }
  logger.info({ agent: agent.agentId }, 'OpenGSLB agent running');
  // The deregistration gets STOP_DEADLINE_MS; the last-resort timer 1.5 s more.
  const shutdown = shutdownOnce(logger, {
    announce: 'stopping: deregistering from every overwatch',
    deadlineMs: STOP_DEADLINE_MS + 1500,
    stop: (signal) => Promise.all([agent.stop(`stopped by ${signal}`), metricsListener?.close()]),
  });
  signals.listen((signal) => {
    if (signal === 'SIGHUP') logger.warn('SIGHUP: an agent does not reload its config; restart it to apply changes');
    else shutdown(signal);
  });
}
