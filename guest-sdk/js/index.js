// Write wasmq tasks in JavaScript.
//
//   import { task, Fatal } from "wasmq-task";
//   export default task((input, cx) => {
//     cx.info("counting words");
//     cx.enqueue("notify", { done: true }); // a child job, made if this one completes
//     if (!input.text) throw new Fatal("no text");
//     return { words: input.text.split(/\s+/).filter(Boolean).length };
//   });
//
// `cx.http` (outbound HTTP) and `cx.config(name)` are opt-in: build with `--http` and/or
// `--config`, so a task that uses neither imports neither.
// `wasmq-task build app.js -o app.wasm` makes the component; `wasmq-task/testing` runs the
// handler under Node for tests. One task per module (its default export).

import { Fatal, Retry } from "./errors.js";
import { Http } from "./http.js";

export { Fatal, Retry } from "./errors.js";
export { HttpDenied, HttpFailed, HttpInvalid, Response } from "./http.js";

const LEVELS = ["debug", "info", "warn", "error"];

/** What a handler gets beside its input: the job's log, progress and identity, and (when
 *  the component was built with `--http` / `--config`) HTTP and config. */
export class Context {
  #sink;
  #job;
  constructor(sink) {
    this.#sink = sink;
  }
  /** `{id, module, attempt, maxAttempts}` of the job being run. */
  get job() {
    this.#job ??= this.#sink.job();
    return this.#job;
  }
  log(level, message) {
    if (!LEVELS.includes(level)) throw new RangeError(`log level ${level} is not one of ${LEVELS}`);
    this.#sink.log(level, String(message));
  }
  debug(message) { this.log("debug", message); }
  info(message) { this.log("info", message); }
  warn(message) { this.log("warn", message); }
  error(message) { this.log("error", message); }
  /** Progress visible while the job runs: 0 to 100, and an optional note. */
  progress(percent, note) {
    const p = Math.trunc(Number(percent));
    if (!(p >= 0 && p <= 100)) throw new RangeError(`progress ${percent} is not between 0 and 100`);
    this.#sink.progress(p, note == null ? undefined : String(note));
  }
  /** The HTTP client (`get`, `postJson`, `send`); needs `wasmq-task build --http` and a
   *  module allow-list naming the hosts. */
  get http() {
    return new Http((request) => this.#sink.send(request));
  }
  /** The module's config value or secret `name`, or undefined when it is not set; needs
   *  `wasmq-task build --config`. A secret written to the log shows as `[redacted]`. */
  config(name) {
    return this.#sink.config(String(name));
  }
  /** Enqueues a job of `module` as a child of this one and returns the id it will have.
   *  It is created if, and only if, this attempt completes: a failed attempt leaves none,
   *  so a retry never doubles them. `input` is sent as JSON (a Uint8Array as it is); the
   *  queue defaults to this job's. Throws `Fatal` when the host refuses it (over the caps,
   *  an unknown module), `Retry` when the store was unavailable. */
  enqueue(module, input, { queue, priority, delayMs, idempotencyKey } = {}) {
    if (delayMs != null && !(Number.isSafeInteger(delayMs) && delayMs >= 0)) {
      throw new RangeError(`delayMs ${delayMs} is not a whole number of milliseconds ≥ 0`);
    }
    const bytes = encodeResult(input) ?? new TextEncoder().encode("null");
    return this.#sink.enqueue({ module: String(module), input: bytes, queue, priority, delayMs, idempotencyKey });
  }
}

/** The host's refusal of a child as the error a task throws: `Retry` when the store was
 *  unavailable (the host says "try again"), else `Fatal`. */
export function refusal(message) {
  return message.endsWith("try again") ? new Retry(message) : new Fatal(message);
}

/** Marks `fn(input, cx)` as the module's task; export the result as the default. */
export function task(fn) {
  if (typeof fn !== "function") throw new TypeError("task() takes the handler function");
  fn.isWasmqTask = true;
  return fn;
}

/** The job's input as a handler sees it: parsed JSON, or the bytes when they are not JSON. */
export function decodeInput(bytes) {
  try {
    return JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
  } catch {
    return bytes;
  }
}

/** The result's bytes: a Uint8Array as it is, undefined for none, anything else as JSON. */
export function encodeResult(value) {
  if (value === undefined) return undefined;
  if (value instanceof Uint8Array) return value;
  if (value instanceof ArrayBuffer) return new Uint8Array(value);
  return new TextEncoder().encode(JSON.stringify(value));
}
