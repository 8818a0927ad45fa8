// One hop of `cx.http` inside a component built with `wasmq-task build --http`: a request
// over wasi:http/outgoing-handler, blocking until the whole response is in.
import { handle } from "wasi:http/outgoing-handler@0.2.12";
import { Fields, IncomingBody, OutgoingBody, OutgoingRequest, httpErrorCode } from "wasi:http/types@0.2.12";
import { HttpDenied, HttpFailed, HttpInvalid, Response, urlParts } from "./http.js";

const METHODS = ["GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"];
const latin1 = new TextDecoder("latin1");

// A child resource (a body's stream) must be gone before its parent is finished.
const drop = (resource) => resource?.[Symbol.dispose]?.();

function codeError(code) {
  const tag = code?.tag ?? String(code);
  const is = (name) => tag.toLowerCase() === name;
  if (is("http-request-denied")) {
    return new HttpDenied("the module's allow-list or the server's policy refused it (see the job's log)");
  }
  if (is("http-request-uri-invalid") || is("http-request-method-invalid")) return new HttpInvalid(tag);
  // A payload may hold a u64, which JSON cannot write as it is.
  const detail = JSON.stringify(code?.val, (_, v) => (typeof v === "bigint" ? Number(v) : v));
  return new HttpFailed(code?.val === undefined ? tag : `${tag} (${detail})`);
}

function streamError(e, doing) {
  const payload = e?.payload;
  if (payload?.tag === "last-operation-failed") {
    const code = httpErrorCode(payload.val);
    if (code !== undefined) {
      const err = codeError(code);
      return err instanceof HttpFailed ? new HttpFailed(`${doing}: ${err.why}`) : err;
    }
    return new HttpFailed(`${doing}: ${payload.val.toDebugString()}`);
  }
  if (payload?.tag === "closed") return new HttpFailed(`${doing}: the connection closed`);
  return e;
}

function writeBody(body, data) {
  let stream;
  try {
    stream = body.write();
  } catch {
    throw new HttpInvalid("the body cannot be written");
  }
  try {
    for (let i = 0; i < data.length; i += 4096) stream.blockingWriteAndFlush(data.subarray(i, i + 4096));
  } catch (e) {
    throw streamError(e, "sending the body");
  } finally {
    drop(stream);
  }
  try {
    OutgoingBody.finish(body, undefined);
  } catch (e) {
    throw codeError(e?.payload);
  }
}

export function send(request) {
  const { scheme, authority, pathWithQuery } = urlParts(request.url);
  const enc = new TextEncoder();
  const entries = request.headers.map(([n, v]) => [n.toLowerCase(), enc.encode(v)]);
  // A length rather than a chunked body: what most webhook receivers expect.
  if (request.body.length > 0 && !entries.some(([n]) => n === "content-length")) {
    entries.push(["content-length", enc.encode(String(request.body.length))]);
  }
  let fields;
  try {
    fields = Fields.fromList(entries);
  } catch (e) {
    throw new HttpInvalid(`headers: ${e?.payload?.tag ?? e}`);
  }
  const outgoing = new OutgoingRequest(fields);
  const method = request.method.toUpperCase();
  try {
    outgoing.setMethod(METHODS.includes(method) ? { tag: method.toLowerCase() } : { tag: "other", val: method });
    outgoing.setScheme({ tag: scheme === "https" ? "HTTPS" : "HTTP" });
    outgoing.setAuthority(authority);
    outgoing.setPathWithQuery(pathWithQuery);
  } catch {
    throw new HttpInvalid(`method, host or path of \`${request.url}\``);
  }
  const body = outgoing.body();
  let future;
  try {
    future = handle(outgoing, undefined);
  } catch (e) {
    throw codeError(e?.payload);
  }
  const wait = () => {
    for (;;) {
      const outer = future.get();
      if (outer !== undefined) {
        if (outer.tag === "err") throw new HttpFailed("the response was taken twice");
        return outer.val;
      }
      const ready = future.subscribe();
      ready.block();
      drop(ready);
    }
  };
  try {
    writeBody(body, request.body);
  } catch (unsent) {
    // A refused request also closes the body's stream: the response says why, so that
    // reason wins over "the connection closed".
    const outcome = wait();
    if (outcome.tag === "err") throw codeError(outcome.val);
    throw unsent;
  }
  const outcome = wait();
  if (outcome.tag === "err") throw codeError(outcome.val);
  const incoming = outcome.val;
  const status = incoming.status();
  const fieldsIn = incoming.headers();
  const headers = fieldsIn.entries().map(([n, v]) => [n, latin1.decode(v)]);
  drop(fieldsIn);
  const incomingBody = incoming.consume();
  const stream = incomingBody.stream();
  const chunks = [];
  let size = 0;
  try {
    for (;;) {
      let chunk;
      try {
        chunk = stream.blockingRead(65536n);
      } catch (e) {
        if (e?.payload?.tag === "closed") break;
        throw streamError(e, "reading the response");
      }
      chunks.push(chunk);
      size += chunk.length;
    }
  } finally {
    drop(stream);
  }
  IncomingBody.finish(incomingBody);
  const bytes = new Uint8Array(size);
  let at = 0;
  for (const c of chunks) {
    bytes.set(c, at);
    at += c.length;
  }
  return new Response(status, headers, bytes);
}
