#!/usr/bin/env node
// `wasmq-task build app.js -o app.wasm`: a JavaScript task as a wasmq component.
//
// Runs componentize-js (the pinned version this package depends on; never `--aot`, which
// downloads a binary) against the WIT inside this package, with an entry module that
// imports the task's default export and exports the WIT `run`. Only WASI's stdio, random
// and clocks are linked: `wasi:http` is left out, so the component imports nothing wasmq
// refuses. The task's file and what it imports (relative files, npm packages, and
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

function usage(message) {
  if (message) console.error(`wasmq-task: ${message}`);
  console.error("usage: wasmq-task build FILE.js -o OUT.wasm");
  process.exit(2);
}

async function build(source, output) {
  if (!existsSync(source) || !statSync(source).isFile()) usage(`${source} is not a file`);
  const dir = mkdtempSync(join(tmpdir(), "wasmq-task-"));
  try {
    const entry = join(dir, "entry.js");
    writeFileSync(
      entry,
      `import handler from ${JSON.stringify(resolve(source))};\n` +
        `import { runTask } from ${JSON.stringify(GUEST)};\n` +
        `if (typeof handler !== "function") throw new Error("the task's file must \`export default task((input, cx) => ...)\`");\n` +
        `export function run(input) { runTask(handler, input); }\n`,
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
      worldName: "task",
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
for (let i = 0; i < rest.length; i++) {
  if (rest[i] === "-o" || rest[i] === "--output") output = rest[++i];
  else if (!source) source = rest[i];
  else usage(`unexpected argument ${rest[i]}`);
}
if (!source || !output) usage();
const size = await build(source, output);
console.log(`${output}: ${size.toLocaleString("en")} bytes (${(size / 2 ** 20).toFixed(1)} MiB)`);
