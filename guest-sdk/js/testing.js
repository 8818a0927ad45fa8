// Run a task's handler under Node, as a test would: no server, no Wasm.
//
//   import { run } from "wasmq-task/testing";
//   const report = run(handler, { text: "a b" });   // { result, resultBytes, log, progress, children }
//
// Input goes through JSON as it would on its way to a job (a Uint8Array stays bytes); a
// failing handler throws what it threw (Retry, Fatal or any other error). `cx.enqueue`
// records child jobs in `report.children` as [id, {module, input, ...}], numbered after
// the job's id.
//
// `config: {...}` and `secrets: {...}` are what `cx.config(name)` reads; a secret's value in
// a log line is replaced by `[redacted]`, as the host does. HTTP is never really sent: each
// request (each redirect hop too) goes to `http`, a function given `{method, url, headers,
// body}` that returns a `Response` (from "wasmq-task") or throws an HTTP error. Without it
// a request throws `HttpDenied`, as for a module with no allow-list.
import { Context, HttpDenied, decodeInput, encodeResult } from "./index.js";

export const REDACTED = "[redacted]";

export function run(
  handler,
  input,
  { attempt = 1, maxAttempts = 3, id = "1", module = "test", config = {}, secrets = {}, http } = {},
) {
  const both = Object.keys(config).find((k) => Object.hasOwn(secrets, k));
  if (both !== undefined) throw new RangeError(`\`${both}\` is in both config and secrets`);
  const hidden = Object.values(secrets).map(String).filter(Boolean);
  const values = { ...config, ...secrets };
  const log = [];
  const progress = [];
  const children = [];
  const sink = {
    log: (level, message) => log.push([level, hidden.reduce((m, s) => m.split(s).join(REDACTED), message)]),
    progress: (percent, note) => progress.push([percent, note ?? null]),
    job: () => ({ id, module, attempt, maxAttempts }),
    send: (request) => {
      if (http === undefined) {
        throw new HttpDenied(`${request.method} ${request.url}: no \`http\` function was given to run()`);
      }
      return http(request);
    },
    config: (name) => (Object.hasOwn(values, name) ? String(values[name]) : undefined),
    enqueue: (child) => {
      const childId = (/^\d+$/.test(id) ? Number(id) : 0) + children.length + 1;
      children.push([childId, child]);
      return childId;
    },
  };
  const bytes = input instanceof Uint8Array ? input : new TextEncoder().encode(JSON.stringify(input ?? null));
  const out = encodeResult(handler(decodeInput(bytes), new Context(sink)));
  return { result: out === undefined ? undefined : decodeInput(out), resultBytes: out, log, progress, children };
}
