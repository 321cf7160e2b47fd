// Any entry point, before anything else loads. Plain JavaScript that every
// Node since 14 can parse, so an old Node gets one clear line instead of a
// syntax error from a TypeScript file.

const NEEDED = [22, 12];

/** Exits 1 with one line naming the needed version when this Node is older than 22.12 or cannot run .ts files. */
export function requireSupportedNode(program) {
  const [major, minor] = process.versions.node.split('.').map(Number);
  const tooOld = major < NEEDED[0] || (major === NEEDED[0] && minor < NEEDED[1]);
  if (tooOld) {
    process.stderr.write(
      `${program}: needs Node.js >= ${NEEDED.join('.')} (this is ${process.version}); run it through npm (npm start, npx ${program}), which uses the project's pinned Node 24\n`,
    );
    process.exit(1);
  }
  if (!process.features || !process.features.typescript) {
    process.stderr.write(
      `${program}: this Node.js (${process.version}) does not run TypeScript sources; use Node.js >= 22.18 or start it with --experimental-strip-types\n`,
    );
    process.exit(1);
  }
}
