// CPU pool thread (piscina). The pre-signing task: give this file to the pool
// as its filename (or re-export it from workers/cpu-task.ts) and run one
// SignBatchTask per call. The packed signatures go back transferred, not
// copied. Pure work on the task's bytes: no sockets, no config, no log.

import { move, transferableSymbol, valueSymbol } from 'piscina';
import { signBatch } from './sign.ts';
import type { SignBatchResult, SignBatchTask } from './sign.ts';

/** Signs every RRset of the task (see signBatch) and returns the result with its signature buffer marked for transfer. */
export default function signTask(task: SignBatchTask): SignBatchResult {
  const result = signBatch(task);
  const movable = {
    get [transferableSymbol](): ArrayBufferLike[] {
      return [result.signatures.buffer];
    },
    get [valueSymbol](): SignBatchResult {
      return result;
    },
  };
  // piscina unwraps the movable into its value on the receiving side.
  return move(movable as never) as unknown as SignBatchResult;
}
