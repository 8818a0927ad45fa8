// Run a task's handler under Node, as a test would: no server, no Wasm.
//
//   import { run } from "wasmq-task/testing";
//   const report = run(handler, { text: "a b" });   // { result, resultBytes, log, progress }
//
// Input goes through JSON as it would on its way to a job (a Uint8Array stays bytes); a
// failing handler throws what it threw (Retry, Fatal or any other error).
import { Context, decodeInput, encodeResult } from "./index.js";

export function run(handler, input, { attempt = 1, maxAttempts = 3, id = "1", module = "test" } = {}) {
  const log = [];
  const progress = [];
  const sink = {
    log: (level, message) => log.push([level, message]),
    progress: (percent, note) => progress.push([percent, note ?? null]),
    job: () => ({ id, module, attempt, maxAttempts }),
  };
  const bytes = input instanceof Uint8Array ? input : new TextEncoder().encode(JSON.stringify(input ?? null));
  const out = encodeResult(handler(decodeInput(bytes), new Context(sink)));
  return { result: out === undefined ? undefined : decodeInput(out), resultBytes: out, log, progress };
}
