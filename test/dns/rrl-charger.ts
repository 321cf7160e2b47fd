// Test worker: charges responses of one client to the RRL table it is given,
// as fast as it can, from a start signal until `ms` have passed, all in the
// one second `nowSec` (the clock is the parent's, so threads descheduled for
// a while by a busy machine cannot earn the account a second's credit), and
// reports how many passed, slipped and were dropped.

import { parentPort, workerData } from 'node:worker_threads';
import { RateLimiter, RRL_KIND_RESPONSE, RRL_PASS, RRL_SLIP, type RrlSettings } from '../../src/dns/rrl.ts';

const { settings, ms, nowSec, go } = workerData as { settings: RrlSettings; ms: number; nowSec: number; go: Int32Array };
const limiter = new RateLimiter(settings);
const ip = Uint8Array.of(192, 0, 2, 7);
const name = Uint8Array.of(3, 0x61, 0x70, 0x70, 4, 0x74, 0x65, 0x73, 0x74, 0);
Atomics.wait(go, 0, 0);
const end = Date.now() + ms;
let passed = 0;
let slipped = 0;
let dropped = 0;
while (Date.now() < end) {
  for (let i = 0; i < 64; i++) {
    const v = limiter.charge(RRL_KIND_RESPONSE, ip, 4, name, 0, name.length, 1, nowSec);
    if (v === RRL_PASS) passed++;
    else if (v === RRL_SLIP) slipped++;
    else dropped++;
  }
}
parentPort?.postMessage({ passed, slipped, dropped });
