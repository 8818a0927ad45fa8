// Outbound HTTP from a task: `cx.http` (build with `wasmq-task build --http`).
//
//   export default task((input, cx) => {
//     const r = cx.http.postJson("https://hooks.example.com/in", { ok: true });
//     return { status: r.status, bytes: r.body.length };
//   });
//
// The host sends a request only to the hosts the module's allow-list names; anything else
// throws `HttpDenied` (and the job's log names the host). A call blocks until the whole
// response has arrived: a task is synchronous. Redirects are followed, at most
// MAX_REDIRECTS; each hop goes back through the host, which checks it like a new request.
// Uncaught, a denied or invalid request fails the job (they are `Fatal`); a failed one
// (connection, TLS, timeout, a response over the cap) fails the attempt (a `Retry`).
import { Fatal, Retry } from "./errors.js";

export const MAX_REDIRECTS = 5;

/** The host refused it: not on the allow-list, a denied address, or the request budget spent. */
export class HttpDenied extends Fatal {
  constructor(why) {
    super(`request denied: ${why}`);
    this.why = why;
    this.name = "HttpDenied";
  }
}

/** The request itself is malformed: a bad URL, method or header. */
export class HttpInvalid extends Fatal {
  constructor(why) {
    super(`invalid request: ${why}`);
    this.why = why;
    this.name = "HttpInvalid";
  }
}

/** It was sent but failed: connection, TLS, timeout, a response over the cap, redirects. */
export class HttpFailed extends Retry {
  constructor(why) {
    super(`request failed: ${why}`);
    this.why = why;
    this.name = "HttpFailed";
  }
}

/** `{scheme, authority, pathWithQuery}` of an http(s) URL, or HttpInvalid. */
export function urlParts(url) {
  let u;
  try {
    u = new URL(url);
  } catch {
    throw new HttpInvalid(`\`${url}\` is not an http:// or https:// URL`);
  }
  if (u.protocol !== "http:" && u.protocol !== "https:") {
    throw new HttpInvalid(`\`${url}\` is not an http:// or https:// URL`);
  }
  if (!u.host) throw new HttpInvalid(`\`${url}\` names no host`);
  return { scheme: u.protocol.slice(0, -1), authority: u.host, pathWithQuery: `${u.pathname || "/"}${u.search}` };
}

/** A whole response: `status`, `headers` ([name, value] pairs), `body` (a Uint8Array). */
export class Response {
  constructor(status, headers = [], body = new Uint8Array()) {
    this.status = status;
    this.headers = headers;
    this.body = typeof body === "string" ? new TextEncoder().encode(body) : body;
  }
  /** The first value of header `name` (any case), or undefined. */
  header(name) {
    const lower = name.toLowerCase();
    return this.headers.find(([n]) => n.toLowerCase() === lower)?.[1];
  }
  text() {
    return new TextDecoder().decode(this.body);
  }
  json() {
    return JSON.parse(this.text());
  }
}

function pairs(headers) {
  if (headers == null) return [];
  const entries = Array.isArray(headers) ? headers : Object.entries(headers);
  return entries.map(([n, v]) => [String(n), String(v)]);
}

/** The task's HTTP client, `cx.http`, over a function that sends one hop. */
export class Http {
  #sendOnce;
  constructor(sendOnce) {
    this.#sendOnce = sendOnce;
  }
  /** `GET url`. */
  get(url, headers) {
    return this.send("GET", url, headers);
  }
  /** `POST url` with `value` as a JSON body. */
  postJson(url, value, headers) {
    return this.send("POST", url, [["content-type", "application/json"], ...pairs(headers)], JSON.stringify(value));
  }
  /** Sends a request, following redirects (a 303, or a 301/302 of a POST, turns into a
   *  GET without a body, as browsers do). `body`: a string or a Uint8Array. */
  send(method, url, headers, body) {
    const request = {
      method: String(method).toUpperCase(),
      url: String(url),
      headers: pairs(headers),
      body: typeof body === "string" ? new TextEncoder().encode(body) : (body ?? new Uint8Array()),
    };
    for (let hop = 0; hop <= MAX_REDIRECTS; hop++) {
      urlParts(request.url);
      const response = this.#sendOnce({ ...request, headers: [...request.headers] });
      const location = [301, 302, 303, 307, 308].includes(response.status) ? response.header("location") : undefined;
      if (location === undefined) return response;
      request.url = new URL(location, request.url).href;
      if (response.status === 303 || ([301, 302].includes(response.status) && request.method === "POST")) {
        request.method = "GET";
        request.body = new Uint8Array();
        request.headers = request.headers.filter(([n]) => n.toLowerCase() !== "content-type");
      }
    }
    throw new HttpFailed(`more than ${MAX_REDIRECTS} redirects`);
  }
}
