// Cold path. Output of the short-lived commands (opengslb-cli, opengslb
// config validate, --version, --help) to a reader that stops early.

/**
 * A reader that stops early (`| head -1`, `| grep -q`) closes the pipe, and
 * Node then emits EPIPE on the stream, which without a listener ends the
 * process with a stack trace and exit 1. The rest of that stream's output has
 * nowhere to go: drop it, and let the command finish with its own exit status;
 * a command killed by SIGPIPE prints nothing either. Any other write error is
 * still thrown. Not for the running server, whose log stream is its own matter.
 */
export function dropOutputToClosedPipes(): void {
  for (const stream of [process.stdout, process.stderr]) {
    if (stream.listenerCount('error') > 0) continue;
    stream.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code !== 'EPIPE') throw err;
    });
  }
}
