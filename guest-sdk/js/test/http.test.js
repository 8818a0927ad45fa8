// `cx.http` and `cx.config` under the harness: requests go to a fake, hop by hop.
import assert from "node:assert/strict";
import { readFileSync, readdirSync } from "node:fs";
import { test } from "node:test";
import { Fatal, HttpDenied, HttpFailed, HttpInvalid, Response, Retry, task } from "../index.js";
import { MAX_REDIRECTS } from "../http.js";
import { run } from "../testing.js";
import webhook from "../../../examples/js/webhook/webhook.js";

const text = (bytes) => new TextDecoder().decode(bytes);

test("webhook posts with config and a redacted secret", () => {
  const seen = [];
  const report = run(
    webhook,
    { url: "https://hooks.example.com/in?x=1", json: { n: 1 }, debug: true },
    {
      config: { agent: "wasmq-test/1" },
      secrets: { token: "s3cr3t" },
      http: (request) => {
        seen.push(request);
        return new Response(202, [["content-type", "text/plain"]], "thanks");
      },
    },
  );
  assert.deepEqual(report.result, { status: 202, bytes: 6 });
  assert.equal(seen.length, 1);
  const [request] = seen;
  assert.equal(request.method, "POST");
  assert.equal(request.url, "https://hooks.example.com/in?x=1");
  assert.equal(text(request.body), '{"n":1}');
  const headers = Object.fromEntries(request.headers);
  assert.equal(headers.authorization, "Bearer s3cr3t");
  assert.equal(headers["user-agent"], "wasmq-test/1");
  assert.equal(headers["content-type"], "application/json");
  const logged = report.log.map(([, m]) => m).join("\n");
  assert.ok(!logged.includes("s3cr3t"), logged);
  assert.ok(logged.includes("Bearer [redacted]") && logged.includes("wasmq-test/1"), logged);
});

test("a 5xx is retried and no http is denied", () => {
  const input = { url: "http://h.example/", json: 1 };
  assert.throws(() => run(webhook, input, { http: () => new Response(503) }), (e) => e instanceof Retry && /answered 503/.test(e.message));
  assert.throws(
    () => run(webhook, input),
    (e) => e instanceof HttpDenied && e instanceof Fatal && e.message.startsWith("request denied"),
  );
});

test("redirects are followed hop by hop", () => {
  const hops = [];
  const upstream = (r) => {
    hops.push([r.method, r.url, text(r.body)]);
    if (r.url.endsWith("/start")) return new Response(303, [["Location", "/next"]]);
    if (r.url.endsWith("/next")) return new Response(307, [["location", "https://other.example/end"]]);
    return new Response(200, [], '{"done": true}');
  };
  const go = task((_, cx) => {
    const r = cx.http.send("post", "https://a.example/start", { "content-type": "text/plain" }, "hi");
    return { status: r.status, json: r.json(), header: r.header("X-Missing") ?? null };
  });
  assert.deepEqual(run(go, null, { http: upstream }).result, { status: 200, json: { done: true }, header: null });
  // A 303 turns the POST into a GET without a body; a 307 keeps the method.
  assert.deepEqual(hops, [
    ["POST", "https://a.example/start", "hi"],
    ["GET", "https://a.example/next", ""],
    ["GET", "https://other.example/end", ""],
  ]);
});

test("a redirect loop fails the attempt; a bad URL is invalid before anything is sent", () => {
  let calls = 0;
  const loop = (r) => {
    calls += 1;
    return new Response(302, [["location", r.url]]);
  };
  const get = task((url, cx) => cx.http.get(url));
  assert.throws(() => run(get, "http://loop.example/", { http: loop }), (e) => e instanceof HttpFailed && e instanceof Retry);
  assert.equal(calls, MAX_REDIRECTS + 1);
  for (const url of ["ftp://files.example/", "not a url"]) {
    assert.throws(
      () => run(get, url, { http: () => assert.fail(`sent ${url}`) }),
      (e) => e instanceof HttpInvalid && e.message.startsWith("invalid request"),
    );
  }
});

test("config reads values and secrets", () => {
  const read = task((_, cx) => [cx.config("a"), cx.config("token"), cx.config("missing") ?? null]);
  assert.deepEqual(run(read, null, { config: { a: "1" }, secrets: { token: "t" } }).result, ["1", "t", null]);
  assert.throws(() => run(read, null, { config: { a: "1" }, secrets: { a: "2" } }), /`a` is in both/);
});

test("the shipped WASI WIT and worlds are the Python SDK's", () => {
  const js = new URL("../wit/", import.meta.url);
  const py = new URL("../../python/src/wasmq_task/wit/", import.meta.url);
  const files = ["worlds.wit", ...readdirSync(new URL("deps/", js)).map((d) => `deps/${d}/${readdirSync(new URL(`deps/${d}/`, js))[0]}`)];
  assert.equal(files.length, 5);
  for (const f of files) assert.equal(readFileSync(new URL(f, js), "utf8"), readFileSync(new URL(f, py), "utf8"), f);
});
