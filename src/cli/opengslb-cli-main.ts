// Cold path. The operator's command-line client. Today it validates config
// files with exactly the code the server runs; the admin-API commands
// (status, servers, overrides…) arrive with the admin API.

import { CONFIG_VALIDATE_USAGE, runConfigValidate } from './config-validate.ts';
import { packageVersion } from './opengslb-main.ts';

const USAGE = `usage: opengslb-cli <command>

  ${CONFIG_VALIDATE_USAGE}   validate a configuration file and its includes as the server would;
                                  exit 0 when valid, 1 when not; --json prints one JSON object
  version                         print the version`;

/** Runs one command and returns the process exit code. */
export async function main(argv: readonly string[]): Promise<number> {
  const [cmd, sub, ...rest] = argv;
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
  if (cmd === 'config' && sub === 'validate') {
    return runConfigValidate(rest, { out: (s) => process.stdout.write(s), err: (s) => process.stderr.write(s) });
  }
  process.stderr.write(`opengslb-cli: unknown command "${argv.join(' ')}"\n${USAGE}\n`);
  return 2;
}
