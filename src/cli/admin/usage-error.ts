// Cold path. The error of a bad flag or argument of `opengslb-cli`, in a
// module of its own so command modules can throw it without importing the
// command table (src/cli/admin/commands.ts imports them).

/** A bad flag or argument: printed with the command's usage, exit 2. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}
