"""The component's side: the WIT export `run` over the handler `@task` marked.

Imported only inside a component built by `wasmq-task build`, where componentize-py's
generated `wit_world` bindings exist. Their module names follow the world: `types` is
`wasmq_task_types` once wasi:http's `types` is imported beside it.
"""

from __future__ import annotations

import importlib
import traceback
from typing import Any, Optional

from componentize_py_types import Err
from wit_world.imports import host

from . import Child, Context, Fatal, JobInfo, Retry, decode_input, encode_result, refusal, registered
from .http import HttpDenied, HttpError, HttpFailed, HttpInvalid, Request, Response


def _optional(name: str) -> Any:
    try:
        return importlib.import_module(f"wit_world.imports.{name}")
    except ImportError:
        return None


# Imported now, while the component is built: at run time there are no files to import
# from. Present only in a world that has them (`--http`, `--config`).
_OPTIONAL = {
    name: _optional(name) for name in ("wasi_http_types", "outgoing_handler", "streams", "store")
}


def _bindings(name: str, option: str) -> Any:
    """The generated module `name`, or an error saying which build option adds it."""
    module = _OPTIONAL[name]
    if module is None:
        raise Fatal(f"this component was built without {option}: rebuild it with `wasmq-task build {option}`")
    return module


try:
    from wit_world.imports import types
except ImportError:
    from wit_world.imports import wasmq_task_types as types  # type: ignore[no-redef]

_LEVELS = {
    "debug": types.Level.DEBUG,
    "info": types.Level.INFO,
    "warn": types.Level.WARN,
    "error": types.Level.ERROR,
}


class _HostSink:
    def log(self, level: str, message: str) -> None:
        host.log(_LEVELS[level], message)

    def progress(self, percent: int, note: Optional[str]) -> None:
        host.progress(percent, note)

    def job(self) -> JobInfo:
        j = host.job()
        return JobInfo(j.id, j.module, j.attempt, j.max_attempts)

    def send(self, request: Request) -> Response:
        return _send_once(request)

    def enqueue(self, child: Child) -> int:
        request = types.EnqueueRequest(
            child.module, child.input, child.queue, child.priority, child.delay_ms, child.idempotency_key
        )
        try:
            return host.enqueue(request)
        except Err as e:
            raise refusal(str(e.value)) from None

    def config(self, name: str) -> Optional[str]:
        store = _bindings("store", "--config")
        try:
            return store.get(name)
        except Err as e:
            raise Retry(f"config `{name}` could not be read: {e.value}") from None


def _code_error(code: Any) -> Exception:
    ht = _bindings("wasi_http_types", "--http")
    if isinstance(code, ht.ErrorCode_HttpRequestDenied):
        return HttpDenied("the module's allow-list or the server's policy refused it (see the job's log)")
    if isinstance(code, (ht.ErrorCode_HttpRequestUriInvalid, ht.ErrorCode_HttpRequestMethodInvalid)):
        return HttpInvalid(type(code).__name__.removeprefix("ErrorCode_"))
    value = getattr(code, "value", None)
    detail = f" ({value})" if value is not None else ""
    return HttpFailed(type(code).__name__.removeprefix("ErrorCode_") + detail)


def _stream_error(e: Err, doing: str) -> Exception:
    ht = _bindings("wasi_http_types", "--http")
    streams = _bindings("streams", "--http")
    if isinstance(e.value, streams.StreamError_LastOperationFailed):
        code = ht.http_error_code(e.value.value)
        if code is not None:
            err = _code_error(code)
            return HttpFailed(f"{doing}: {err.why}") if isinstance(err, HttpFailed) else err
        return HttpFailed(f"{doing}: {e.value.value.to_debug_string()}")
    return HttpFailed(f"{doing}: the connection closed")


_METHODS = ("GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH")


def _send_once(request: Request) -> Response:
    """One hop over wasi:http/outgoing-handler, blocking until the whole response is in."""
    ht = _bindings("wasi_http_types", "--http")
    handler = _bindings("outgoing_handler", "--http")
    streams = _bindings("streams", "--http")
    scheme, authority, path = request.parts()
    entries = [(n.lower(), v.encode("latin-1")) for n, v in request.headers]
    # A length rather than a chunked body: what most webhook receivers expect.
    if request.body and not any(n == "content-length" for n, _ in entries):
        entries.append(("content-length", str(len(request.body)).encode()))
    try:
        fields = ht.Fields.from_list(entries)
    except Err as e:
        raise HttpInvalid(f"headers: {type(e.value).__name__}") from None
    outgoing = ht.OutgoingRequest(fields)
    method = request.method.upper()
    if method in _METHODS:
        outgoing.set_method(getattr(ht, f"Method_{method.capitalize()}")())
    else:
        outgoing.set_method(ht.Method_Other(method))
    outgoing.set_scheme(ht.Scheme_Https() if scheme == "https" else ht.Scheme_Http())
    try:
        outgoing.set_authority(authority)
        outgoing.set_path_with_query(path)
    except Err:
        raise HttpInvalid(f"host or path of `{request.url}`") from None
    body = outgoing.body()
    try:
        future = handler.handle(outgoing, None)
    except Err as e:
        raise _code_error(e.value) from None

    def wait() -> Any:
        while True:
            outer = future.get()
            if outer is not None:
                break
            with future.subscribe() as ready:
                ready.block()
        if isinstance(outer, Err):
            raise HttpFailed("the response was taken twice")
        return outer.value

    try:
        _write_body(ht, body, request.body)
    except HttpError as unsent:
        # A refused request also closes the body's stream: the response says why, so
        # that reason wins over "the connection closed".
        outcome = wait()
        if isinstance(outcome, Err):
            raise _code_error(outcome.value) from None
        raise unsent
    outcome = wait()
    if isinstance(outcome, Err):
        raise _code_error(outcome.value)
    incoming = outcome.value
    status = incoming.status()
    with incoming.headers() as fields:
        headers = [(n, v.decode("latin-1")) for n, v in fields.entries()]
    try:
        incoming_body = incoming.consume()
    except Err:
        raise HttpFailed("the response has no body") from None
    chunks = []
    with incoming_body.stream() as reading:
        while True:
            try:
                chunks.append(reading.blocking_read(64 << 10))
            except Err as e:
                if isinstance(e.value, streams.StreamError_Closed):
                    break
                raise _stream_error(e, "reading the response") from None
    ht.IncomingBody.finish(incoming_body)
    return Response(status, headers, b"".join(chunks))


def _write_body(ht: Any, body: Any, data: bytes) -> None:
    try:
        stream = body.write()
    except Err:
        raise HttpInvalid("the body cannot be written") from None
    with stream:
        for i in range(0, len(data), 4096):
            try:
                stream.blocking_write_and_flush(data[i : i + 4096])
            except Err as e:
                raise _stream_error(e, "sending the body") from None
    try:
        ht.OutgoingBody.finish(body, None)
    except Err as e:
        raise _code_error(e.value) from None


def run(data: bytes) -> None:
    """One attempt: the handler's return value becomes the result; `Fatal` fails the job,
    `Retry` and any other exception fail the attempt (the traceback goes to the log)."""
    cx = Context(_HostSink())
    try:
        value = registered()(decode_input(data), cx)
    except Fatal as e:
        raise Err(types.TaskError_Fatal(str(e) or "Fatal"))
    except Retry as e:
        raise Err(types.TaskError_Retry(str(e) or "Retry"))
    except Exception as e:
        host.log(types.Level.ERROR, traceback.format_exc())
        raise Err(types.TaskError_Retry(f"{type(e).__name__}: {e}"))
    out = encode_result(value)
    if out is not None:
        # Past the output cap the host refuses and records `output_limit`, which is the
        # job's failure whatever happens next; the Err only ends the attempt.
        host.set_result(out)
