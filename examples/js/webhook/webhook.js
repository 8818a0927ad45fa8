// A webhook: POSTs a JSON document to a URL; the JavaScript twin of examples/webhook.
//
// Input `{"url": "https://…", "json": <any>, "debug": <bool, optional>}`; result
// `{"status": <int>, "bytes": <bytes of the response body>}`. The module's config may set
// `token` (sent as `Authorization: Bearer …`; make it a secret) and `agent` (the
// `User-Agent`). `debug` logs the headers sent: a secret among them comes out as
// `[redacted]` in the job's log. The host sends the request only if the module's
// allow-list names the URL's host:
//
//   npx wasmq-task build --http --config webhook/webhook.js -o webhook-js.wasm
//   wasmq module push webhook-js webhook-js.wasm --allow-host https://hooks.example.com
//   wasmq job enqueue webhook-js --input '{"url": "https://hooks.example.com/in", "json": {"ok": true}}' --wait
import { Fatal, Retry, task } from "wasmq-task";

export default task((input, cx) => {
  if (typeof input?.url !== "string" || !("json" in input)) {
    throw new Fatal('input must be {"url": "...", "json": ...}');
  }
  const headers = {};
  const token = cx.config("token");
  if (token !== undefined) headers.authorization = `Bearer ${token}`;
  const agent = cx.config("agent");
  if (agent !== undefined) headers["user-agent"] = agent;
  if (input.debug) cx.debug(`headers: ${JSON.stringify(headers)}`);
  cx.info(`POST ${input.url}`);
  const response = cx.http.postJson(input.url, input.json, headers);
  if (response.status >= 500) throw new Retry(`the webhook answered ${response.status}`);
  return { status: response.status, bytes: response.body.length };
});
