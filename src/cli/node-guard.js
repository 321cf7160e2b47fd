// Any entry point, before anything else loads. Plain JavaScript that every
// Node since 14 can parse, so an old Node gets one clear line instead of a
// syntax error from a TypeScript file. Shipped as it is in the package (it is
// not built): the entry points and this file are the package's src/cli/.

import { existsSync } from 'node:fs';

const NEEDED = [22, 12];

/**
 * Returns where an entry point's code is: in a clone, the TypeScript source
 * `name`.ts beside the entry, which Node runs directly (`fromSources` true);
 * in an installed package, which ships no .ts files, the JavaScript built
 * from it, dist/src/cli/`name`.js (`fromSources` false). Node refuses to strip
 * types under node_modules, so an installed package must run the built code.
 */
export function locateMain(entryUrl, name) {
  const source = new URL(`./${name}.ts`, entryUrl);
  if (existsSync(source)) return { url: source.href, fromSources: true };
  return { url: new URL(`../../dist/src/cli/${name}.js`, entryUrl).href, fromSources: false };
}

/**
 * Exits 1 with one line naming the needed version when this Node is older
 * than 22.12, or, when it would run the TypeScript sources (`fromSources`),
 * cannot strip types. The advice differs: a clone has the pinned Node 24 one
 * `npm` away; an installed package has only the Node it was installed with.
 */
export function requireSupportedNode(program, fromSources) {
  const [major, minor] = process.versions.node.split('.').map(Number);
  const tooOld = major < NEEDED[0] || (major === NEEDED[0] && minor < NEEDED[1]);
  const needs = `${program}: OpenGSLB needs Node.js >= ${NEEDED.join('.')}; this is ${process.version}`;
  if (tooOld) {
    process.stderr.write(
      fromSources
        ? `${needs}: run it through npm (npm start, npx ${program}), which uses the project's pinned Node 24, or install Node.js ${NEEDED.join('.')} or newer\n`
        : `${needs}: install Node.js ${NEEDED.join('.')} or newer (24 LTS recommended) and run ${program} again\n`,
    );
    process.exit(1);
  }
  if (fromSources && (!process.features || !process.features.typescript)) {
    process.stderr.write(
      `${program}: this Node.js (${process.version}) does not run TypeScript sources; use Node.js >= 22.18, start it with --experimental-strip-types, or run it through npm (the project's pinned Node 24)\n`,
    );
    process.exit(1);
  }
}
