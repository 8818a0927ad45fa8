// The test harness: handlers run under Node as a job would run them.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { Fatal, Retry, task } from "../index.js";
import { run } from "../testing.js";
import wordcount from "../../../examples/js/wordcount/wordcount.js";

test("wordcount counts, logs and reports progress", () => {
  const report = run(wordcount, { text: "the cat and the hat.\nThe end" });
  assert.deepEqual(report.result, {
    words: 7,
    lines: 2,
    chars: 28,
    top: [["the", 3], ["and", 1], ["cat", 1], ["end", 1], ["hat", 1]],
  });
  assert.deepEqual(report.log, [["info", "counting 28 bytes of text"]]);
  assert.deepEqual(report.progress, [[80, "counted"]]);
});

test("Fatal is thrown as the job would fail", () => {
  assert.throws(() => run(wordcount, { no: "text" }), Fatal);
});

test("bytes in, bytes out, and the job's identity", () => {
  const echo = task((input, cx) => {
    assert.ok(input instanceof Uint8Array);
    cx.warn(`attempt ${cx.job.attempt} of ${cx.job.maxAttempts}`);
    return input.slice().reverse();
  });
  const report = run(echo, new Uint8Array([0xff, 0, 0x61]), { attempt: 2, maxAttempts: 5 });
  assert.deepEqual([...report.resultBytes], [0x61, 0, 0xff]);
  assert.deepEqual(report.log, [["warn", "attempt 2 of 5"]]);
});

test("Retry and other errors propagate; bad progress is an error", () => {
  assert.throws(() => run(task(() => { throw new Retry("not yet"); }), {}), Retry);
  assert.throws(() => run(task((input) => input.missing.field), {}), TypeError);
  assert.throws(() => run(task((_, cx) => cx.progress(101)), {}), RangeError);
});

test("the shipped WIT is the project's", () => {
  const shipped = readFileSync(new URL("../wit/task.wit", import.meta.url), "utf8");
  assert.equal(shipped, readFileSync(new URL("../../../wit/task.wit", import.meta.url), "utf8"));
});

test("child jobs are recorded with their ids and options", () => {
  const publish = task((input, cx) => {
    const ids = input.locales.map((locale) => cx.enqueue("reindex", { page: input.page, locale }));
    cx.enqueue("notify", new Uint8Array([1, 2]), { queue: "mail", priority: 5, delayMs: 1000, idempotencyKey: "page-7" });
    return { children: ids };
  });
  const report = run(publish, { page: 7, locales: ["en", "de"] }, { id: "40" });
  assert.deepEqual(report.result, { children: [41, 42] });
  const [id, child] = report.children[1];
  assert.equal(id, 42);
  assert.equal(child.module, "reindex");
  assert.equal(new TextDecoder().decode(child.input), '{"page":7,"locale":"de"}');
  const last = report.children[2][1];
  assert.deepEqual([[...last.input], last.queue, last.priority, last.delayMs, last.idempotencyKey], [[1, 2], "mail", 5, 1000, "page-7"]);
});

test("a refused child is Fatal unless the store was unavailable", async () => {
  const { refusal } = await import("../index.js");
  assert.ok(refusal("no module `x` is uploaded") instanceof Fatal);
  assert.ok(refusal("the store was unavailable; try again") instanceof Retry);
});

test("a negative or fractional delay is refused before the host", () => {
  const late = task((input, cx) => cx.enqueue("notify", {}, { delayMs: input }));
  for (const bad of [-1, 1.5]) assert.throws(() => run(late, bad), RangeError);
});
