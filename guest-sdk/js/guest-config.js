// `cx.config(name)` inside a component built with `wasmq-task build --config`.
import { get } from "wasi:config/store@0.2.0-rc.1";
import { Retry } from "./errors.js";

export function config(name) {
  try {
    return get(name) ?? undefined;
  } catch (e) {
    throw new Retry(`config \`${name}\` could not be read: ${JSON.stringify(e.payload ?? String(e))}`);
  }
}
