// A real `wasmq serve` for the dashboard tests: the debug binary on the embedded SQLite
// store in a fresh directory, on a free loopback port, with keys made by `wasmq key create`.
import { spawn, execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, existsSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";

export const ROOT = resolve(import.meta.dirname, "..", "..");
const BIN = process.env.WASMQ_BIN || join(ROOT, "target", "debug", "wasmq");

/** The wasm of a guest built by tests/build.rs (cargo test builds them all). */
export function guest(stem) {
  const path = join(ROOT, "target", "guests", "wasm32-wasip2", "guest", `${stem}.wasm`);
  if (!existsSync(path)) {
    throw new Error(`${path} is missing: build the guests first (cargo test -p wasmq-tests --no-run)`);
  }
  return readFileSync(path);
}

async function freePort() {
  return new Promise((ok, fail) => {
    const s = createServer();
    s.once("error", fail);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => ok(port));
    });
  });
}

/** The environment of a child: no WASMQ_* of the caller's shell, no wasmq.toml. */
function env() {
  const e = Object.fromEntries(
    Object.entries(process.env).filter(([k]) => !k.startsWith("WASMQ_") && k !== "RUST_LOG"),
  );
  return { ...e, WASMQ_CONFIG: "/dev/null", NO_COLOR: "1" };
}

export async function startServer() {
  if (!existsSync(BIN)) throw new Error(`no wasmq binary at ${BIN}; run cargo build first`);
  const dir = mkdtempSync(join(tmpdir(), "wasmq-ui-"));
  const dataDir = join(dir, "data");
  const key = (...args) =>
    execFileSync(BIN, ["key", "create", "--data-dir", dataDir, ...args], { env: env() })
      .toString()
      .trim();
  const keys = {
    admin: key("--tenant", "acme"),
    reader: key("--tenant", "acme", "--scope", "jobs:read"),
    other: key("--tenant", "globex"),
  };
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const child = spawn(
    BIN,
    ["serve", "--data-dir", dataDir, "--listen", `127.0.0.1:${port}`,
      "--artifact-dir", join(dir, "artifacts"), "--grace", "1s", "--max-fuel", "1000000000000000"],
    { env: env(), stdio: ["ignore", "pipe", "pipe"] },
  );
  let log = "";
  child.stdout.on("data", (d) => (log += d));
  child.stderr.on("data", (d) => (log += d));
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`wasmq serve exited:\n${log}`);
    try {
      if ((await fetch(`${base}/healthz`)).ok) break;
    } catch { /* not listening yet */ }
    if (Date.now() > deadline) throw new Error(`wasmq serve did not answer in 30 s:\n${log}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  const api = async (method, path, key, body, type = "application/json") => {
    const r = await fetch(base + path, {
      method,
      headers: { authorization: `Bearer ${key}`, "content-type": type },
      body: body === undefined ? undefined : type === "application/json" ? JSON.stringify(body) : body,
    });
    const text = await r.text();
    if (!r.ok) throw new Error(`${method} ${path}: ${r.status} ${text}`);
    return text ? JSON.parse(text) : null;
  };
  return {
    base,
    keys,
    /** A new key of `tenant` with every scope, made while the server runs. */
    newKey: (tenant) => key("--tenant", tenant),
    /** Revokes `whole` (`wq_<id>_<secret>`) through the store, as an operator would. */
    revoke: (whole, tenant) =>
      execFileSync(BIN, ["key", "revoke", whole.split("_")[1], "--tenant", tenant,
        "--data-dir", dataDir], { env: env() }),
    api,
    log: () => log,
    async enqueue(key, module, input, extra = {}) {
      return api("POST", "/v1/jobs", key, { module, input, ...extra });
    },
    async stop() {
      child.kill("SIGTERM");
      await new Promise((r) => (child.exitCode !== null ? r() : child.once("exit", r)));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
