// The component's side: the WIT export `run` over a task's handler. Imported only by the
// entry module `wasmq-task build` generates, inside componentize-js; that entry passes
// `send` (guest-http.js) and `config` (guest-config.js) when built with --http / --config,
// whose imports a task without them must not carry.
import { log, progress, setResult, job, enqueue } from "wasmq:task/host@0.2.0";
import { Context, Fatal, Retry, decodeInput, encodeResult, refusal } from "./index.js";

const without = (option) => () => {
  throw new Fatal(`this component was built without ${option}: rebuild it with \`wasmq-task build ${option}\``);
};

// A WIT `result` error is thrown as an Error whose `payload` is the `task-error` variant.
function taskError(tag, message) {
  const e = new Error(message);
  e.payload = { tag, val: message };
  return e;
}

/** One attempt: the return value becomes the result; Fatal fails the job, Retry and any
 *  other exception fail the attempt (the stack goes to the log). */
export function runTask(handler, input, { send = without("--http"), config = without("--config") } = {}) {
  const sink = {
    log: (level, message) => log(level, message),
    progress: (percent, note) => progress(percent, note),
    job: () => job(),
    enqueue: (child) => {
      const request = {
        ...child,
        // WIT's u64 is a BigInt here; an option is undefined when not given.
        delayMs: child.delayMs == null ? undefined : BigInt(child.delayMs),
      };
      try {
        return Number(enqueue(request));
      } catch (e) {
        throw refusal(String(e?.payload ?? e?.message ?? e));
      }
    },
    send,
    config,
  };
  let value;
  try {
    value = handler(decodeInput(input), new Context(sink));
  } catch (e) {
    if (e instanceof Fatal) throw taskError("fatal", e.message || "Fatal");
    if (e instanceof Retry) throw taskError("retry", e.message || "Retry");
    const what = e instanceof Error ? `${e.name}: ${e.message}` : `Error: ${String(e)}`;
    log("error", e instanceof Error && e.stack ? `${what}\n${e.stack}` : what);
    throw taskError("retry", what);
  }
  if (value && typeof value.then === "function") {
    throw taskError("fatal", "the task returned a Promise: a wasmq task is synchronous");
  }
  const out = encodeResult(value);
  // Past the output cap the host refuses and records `output_limit`, whatever follows.
  if (out !== undefined) setResult(out);
}
