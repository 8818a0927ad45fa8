"""Outbound HTTP from a task: `cx.http` (build with `wasmq-task build --http`).

    @task
    def run(input, cx):
        r = cx.http.post_json("https://hooks.example.com/in", {"ok": True})
        return {"status": r.status, "bytes": len(r.body)}

The host sends a request only to the hosts the module's allow-list names; anything else
raises `HttpDenied` (and the job's log names the host). A call blocks until the whole
response has arrived. Redirects are followed, at most `MAX_REDIRECTS`; each hop goes back
through the host, which checks it like a new request.

Uncaught, a denied or invalid request fails the job (they are `Fatal`); a failed one
(connection, TLS, timeout, a response over the cap) fails the attempt (it is a `Retry`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, List, Mapping, Optional, Tuple, Union
from urllib.parse import urljoin, urlsplit

from . import Fatal, Retry

__all__ = [
    "Http", "Request", "Response", "HttpError", "HttpDenied", "HttpInvalid", "HttpFailed",
    "MAX_REDIRECTS",
]

MAX_REDIRECTS = 5


class HttpError(Exception):
    """Why a request failed; one of the three below."""


class HttpDenied(HttpError, Fatal):
    """The host refused it: not on the module's allow-list, a denied address, or the
    attempt's request budget spent. Retrying will not help."""

    def __init__(self, why: str) -> None:
        super().__init__(f"request denied: {why}")
        self.why = why


class HttpInvalid(HttpError, Fatal):
    """The request itself is malformed: a bad URL, method or header."""

    def __init__(self, why: str) -> None:
        super().__init__(f"invalid request: {why}")
        self.why = why


class HttpFailed(HttpError, Retry):
    """It was sent but failed: connection, TLS, timeout, a response over the cap, too many
    redirects."""

    def __init__(self, why: str) -> None:
        super().__init__(f"request failed: {why}")
        self.why = why


@dataclass
class Request:
    """One hop: what the host is asked to send."""

    method: str
    url: str
    headers: List[Tuple[str, str]] = field(default_factory=list)
    body: bytes = b""

    def parts(self) -> Tuple[str, str, str]:
        """(scheme, authority, path with query) of `url`, or `HttpInvalid`."""
        u = urlsplit(self.url)
        if u.scheme not in ("http", "https"):
            raise HttpInvalid(f"`{self.url}` is not an http:// or https:// URL")
        if not u.netloc:
            raise HttpInvalid(f"`{self.url}` names no host")
        path = u.path or "/"
        return u.scheme, u.netloc, f"{path}?{u.query}" if u.query else path


@dataclass
class Response:
    """A whole response: status, headers (names lower case) and body."""

    status: int
    headers: List[Tuple[str, str]]
    body: bytes

    def header(self, name: str) -> Optional[str]:
        """The first value of header `name` (any case), or None."""
        name = name.lower()
        return next((v for n, v in self.headers if n.lower() == name), None)

    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")

    def json(self) -> Any:
        return json.loads(self.body)


SendOnce = Callable[[Request], Response]
Headers = Union[Mapping[str, str], Iterable[Tuple[str, str]], None]


class Http:
    """The task's HTTP client, `cx.http`."""

    def __init__(self, send_once: SendOnce) -> None:
        self._send_once = send_once

    def get(self, url: str, headers: Headers = None) -> Response:
        """`GET url`."""
        return self.send("GET", url, headers)

    def post_json(self, url: str, value: Any, headers: Headers = None) -> Response:
        """`POST url` with `value` as a JSON body."""
        body = json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        sent = [("content-type", "application/json"), *_pairs(headers)]
        return self.send("POST", url, sent, body)

    def send(
        self, method: str, url: str, headers: Headers = None, body: Union[bytes, str] = b""
    ) -> Response:
        """Sends a request, following redirects (a 303, or a 301/302 of a POST, turns into
        a GET without a body, as browsers do)."""
        request = Request(
            method.upper(), url, _pairs(headers), body.encode() if isinstance(body, str) else bytes(body)
        )
        for _ in range(MAX_REDIRECTS + 1):
            request.parts()
            response = self._send_once(request)
            location = response.header("location") if response.status in (301, 302, 303, 307, 308) else None
            if location is None:
                return response
            request.url = urljoin(request.url, location)
            if response.status == 303 or (response.status in (301, 302) and request.method == "POST"):
                request.method = "GET"
                request.body = b""
                request.headers = [(n, v) for n, v in request.headers if n.lower() != "content-type"]
        raise HttpFailed(f"more than {MAX_REDIRECTS} redirects")


def _pairs(headers: Headers) -> List[Tuple[str, str]]:
    if headers is None:
        return []
    items = headers.items() if isinstance(headers, Mapping) else headers
    return [(str(n), str(v)) for n, v in items]
