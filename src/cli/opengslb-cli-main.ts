// Cold path. The operator's command-line client. Today it validates config
// files with exactly the code the server runs; the admin-API commands
// (status, servers, overrides…) arrive with the admin API.

import { loadConfigFile } from '../config/load.ts';
import { OpenGslbError } from '../lib/errors.ts';
import { packageVersion } from './opengslb-main.ts';

const USAGE = `usage: opengslb-cli <command>

  config validate FILE   validate a configuration file as the server would; exit 0 when valid, 1 when not
  version                print the version`;

/** Runs one command and returns the process exit code. */
export async function main(argv: readonly string[]): Promise<number> {
  const [cmd, sub, file, ...rest] = argv;
  if (cmd === undefined) {
    process.stderr.write(USAGE + '\n');
    return 2;
  }
  if (cmd === 'help' || cmd === '--help' || cmd === '-h') {
    process.stdout.write(USAGE + '\n');
    return 0;
  }
  if (cmd === 'version' || cmd === '--version') {
    process.stdout.write(`opengslb-cli ${packageVersion()}\n`);
    return 0;
  }
  if (cmd === 'config' && sub === 'validate' && file !== undefined && rest.length === 0) {
    try {
      const config = await loadConfigFile(file);
      const servers = config.regions.reduce((n, r) => n + r.servers.length, 0);
      process.stdout.write(
        `${file}: valid (mode ${config.mode}, ${config.dns.zones.length} zones, ${config.regions.length} regions, ${config.domains.length} domains, ${servers} servers)\n`,
      );
      return 0;
    } catch (err) {
      process.stderr.write((err instanceof OpenGslbError ? err.message : `${file}: ${(err as Error).message}`) + '\n');
      return 1;
    }
  }
  process.stderr.write(`opengslb-cli: unknown command "${argv.join(' ')}"\n${USAGE}\n`);
  return 2;
}
