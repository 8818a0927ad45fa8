#!/usr/bin/env node
// `wasmq-task build app.js -o app.wasm [--http] [--config]`: a JavaScript task as a wasmq
// component.
//
// Runs componentize-js (the pinned version this package depends on; never `--aot`, which
// downloads a binary) against the WIT inside this package, with an entry module that
// imports the task's default export and exports the WIT `run`. Only WASI's stdio, random
// and clocks are linked: StarlingMonkey's own `fetch` over wasi:http stays disabled (it is
// asynchronous, a task is not). `--http` adds `cx.http` (guest-http.js, which imports
// wasi:http/outgoing-handler), `--config` adds `cx.config` (wasi:config/store): a component
// carries every import of its world, and one importing wasi:http needs an allow-list and
// loses the run-ahead fast path, so a task gets them only when asked (wit/worlds.wit). The task's file and what it imports (relative files, npm packages, and
// `wasmq-task` itself) are bundled into one module first: componentize-js reads only that.
import { mkdtempSync, rmSync, statSync, writeFileSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { componentize } from "@bytecodealliance/componentize-js";
import { rolldown } from "rolldown";

const here = dirname(fileURLToPath(import.meta.url));
const WIT = join(here, "..", "wit");
const GUEST = join(here, "..", "guest.js");
const SDK = join(here, "..", "index.js");
const GUEST_HTTP = join(here, "..", "guest-http.js");
const GUEST_CONFIG = join(here, "..", "guest-config.js");

function usage(message) {
  if (message) console.error(`wasmq-task: ${message}`);
  console.error("usage: wasmq-task build FILE.js -o OUT.wasm [--http] [--config]");
  process.exit(2);
}

async function build(source, output, { http = false, config = false } = {}) {
  if (!existsSync(source) || !statSync(source).isFile()) usage(`${source} is not a file`);
  const dir = mkdtempSync(join(tmpdir(), "wasmq-task-"));
  try {
    const entry = join(dir, "entry.js");
    const uses = [http && `send`, config && `config`].filter(Boolean);
    writeFileSync(
      entry,
      `import handler from ${JSON.stringify(resolve(source))};\n` +
        `import { runTask } from ${JSON.stringify(GUEST)};\n` +
        (http ? `import { send } from ${JSON.stringify(GUEST_HTTP)};\n` : "") +
        (config ? `import { config } from ${JSON.stringify(GUEST_CONFIG)};\n` : "") +
        `if (typeof handler !== "function") throw new Error("the task's file must \`export default task((input, cx) => ...)\`");\n` +
        `export function run(input) { runTask(handler, input, { ${uses.join(", ")} }); }\n`,
    );
    const bundled = join(dir, "bundle.js");
    const bundle = await rolldown({
      input: entry,
      external: [/^wasmq:/, /^wasi:/],
      platform: "neutral",
      resolve: { alias: { "wasmq-task": SDK } },
      logLevel: "warn",
    });
    await bundle.write({ file: bundled, format: "esm" });
    await bundle.close();
    const { component } = await componentize({
      sourcePath: bundled,
      witPath: WIT,
      worldName: "task" + (http ? "-http" : "") + (config ? "-config" : ""),
      disableFeatures: ["http", "fetch-event"],
    });
    writeFileSync(output, component);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return statSync(output).size;
}

const [command, ...rest] = process.argv.slice(2);
if (command !== "build") usage(command ? `unknown command ${command}` : undefined);
let source;
let output;
const options = { http: false, config: false };
for (let i = 0; i < rest.length; i++) {
  if (rest[i] === "-o" || rest[i] === "--output") output = rest[++i];
  else if (rest[i] === "--http") options.http = true;
  else if (rest[i] === "--config") options.config = true;
  else if (!source) source = rest[i];
  else usage(`unexpected argument ${rest[i]}`);
}
if (!source || !output) usage();
const size = await build(source, output, options);
console.log(`${output}: ${size.toLocaleString("en")} bytes (${(size / 2 ** 20).toFixed(1)} MiB)`);
