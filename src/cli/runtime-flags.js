// The Node flags the server runs with, wherever it is started: the npm start
// script, the bin's shebang and the Dockerfile's ENTRYPOINT carry them, and a
// test keeps the three in step with this list. Plain JavaScript, like the guard.
//
// --max-semi-space-size=4 caps V8's young generation at 4 MiB per semi-space.
// The main thread allocates steadily while it health-checks (about 1 000
// probes a second at 10 000 servers every 10 s), and V8 otherwise grows the
// young generation to its default maximum and keeps it: measured with
// `npx node bench/health-dns.ts` at 10 000 checked servers, RSS 273–299 MB
// without the flag and 178–183 MB with it, and the DNS answer rate did not
// drop (idle 105 355 q/s with it, 99 657 without). DNS workers allocate almost
// nothing per query, so the cap costs them nothing.

//
// --heap-growing-percent=25 lets V8's old generation grow to 1.25 times what
// the last full collection left, instead of the up to 2–4 times V8 picks on a
// machine with gigabytes free. An overwatch that hears thousands of agents
// promotes a steady stream of medium-lived objects (messages in flight,
// decoded reports): measured with `npx node bench/agents-scale.ts` at 5 000
// agents × 3 backends, the heap grew to 235–313 MB over about 95 MB live and
// RSS stood at 433–559 MB; with the flag, RSS 344–348 MB at a heavier load,
// for 0.9 % of a core more in V8's helper threads. DNS workers allocate almost
// nothing per query, so it costs them nothing.

/** Flags for the `node` that runs src/cli/opengslb.js. */
export const SERVER_NODE_FLAGS = Object.freeze(['--max-semi-space-size=4', '--heap-growing-percent=25']);

// MALLOC_ARENA_MAX=2 caps glibc's malloc at two arenas. By default every thread
// that allocates (main, DNS workers, V8's GC helpers, libuv's pool) may get an
// arena of its own, each holding freed memory for reuse. glibc reads the
// variable once, before any code of ours runs, so it is set where the process
// is started: the npm start script, the bin's shebang (`env -S` takes NAME=VALUE
// before the command) and the Dockerfile's ENV, kept in step by the same tests.
// Measured with `npx node bench/health-dns.ts --runs 2 --duration 5 --backend nginx`
// at 10 000 checked servers: RSS 186–187 MB checking and 165–173 MB idle without
// it, 174 MB and 157 MB with it. Other C libraries (musl) ignore it.

/** Environment for the process that runs src/cli/opengslb.js. */
export const SERVER_ENV = Object.freeze({ MALLOC_ARENA_MAX: '2' });
