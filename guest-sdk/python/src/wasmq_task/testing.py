"""Run a task's handler under plain CPython, as a test would: no server, no Wasm.

    from wasmq_task.testing import run
    report = run(handler, {"text": "a b"})
    assert report.result == {"words": 2}

The input goes through JSON as it would on its way to a job (bytes stay bytes), the
result comes back as the job's JSON view would show it, and a failing handler raises what
it raised (`Retry`, `Fatal` or any other exception), as the job would fail.
`cx.enqueue` records the child jobs in `report.children`, numbered after the job's id.

`config={...}` and `secrets={...}` are what `cx.config(name)` reads; a secret's value in
a log line is replaced by `[redacted]`, as the host does. HTTP is never really sent: each
request (each redirect hop too) goes to `http`, a function given a
`wasmq_task.http.Request` that returns a `Response` or raises an `HttpError`. Without it a
request raises `HttpDenied`, as for a module with no allow-list.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Callable, List, Mapping, Optional, Tuple

from . import Child, Context, Handler, JobInfo, decode_input, encode_result
from .http import HttpDenied, Request, Response

REDACTED = "[redacted]"

__all__ = ["run", "Report"]


@dataclass
class Report:
    """What an attempt left: the result (parsed JSON, or bytes), its raw bytes, the log
    lines as (level, message) and the progress calls as (percent, note)."""

    result: Any
    result_bytes: Optional[bytes]
    log: List[Tuple[str, str]] = field(default_factory=list)
    progress: List[Tuple[int, Optional[str]]] = field(default_factory=list)
    # The child jobs `cx.enqueue` made, as (id, Child): the host would store them only
    # because the handler returned.
    children: List[Tuple[int, Child]] = field(default_factory=list)

    def log_text(self) -> str:
        return "\n".join(f"{level}: {message}" for level, message in self.log)


class _Recorder:
    def __init__(
        self,
        job: JobInfo,
        config: Mapping[str, str],
        secrets: Mapping[str, str],
        http: Optional[Callable[[Request], Response]],
    ) -> None:
        self._job = job
        self._config = {**config, **secrets}
        self._secrets = [v for v in secrets.values() if v]
        self._http = http
        self.log_lines: List[Tuple[str, str]] = []
        self.progress_calls: List[Tuple[int, Optional[str]]] = []
        self.children: List[Tuple[int, Child]] = []

    def log(self, level: str, message: str) -> None:
        for secret in self._secrets:
            message = message.replace(secret, REDACTED)
        self.log_lines.append((level, message))

    def send(self, request: Request) -> Response:
        if self._http is None:
            raise HttpDenied(
                f"{request.method} {request.url}: no `http` function was given to testing.run"
            )
        return self._http(request)

    def config(self, name: str) -> Optional[str]:
        return self._config.get(name)

    def progress(self, percent: int, note: Optional[str]) -> None:
        self.progress_calls.append((percent, note))

    def job(self) -> JobInfo:
        return self._job

    def enqueue(self, child: Child) -> int:
        base = int(self._job.id) if self._job.id.isdigit() else 0
        new_id = base + len(self.children) + 1
        self.children.append((new_id, child))
        return new_id


def run(
    handler: Handler,
    input: Any = None,
    *,
    attempt: int = 1,
    max_attempts: int = 3,
    job_id: str = "1",
    module: str = "test",
    config: Optional[Mapping[str, str]] = None,
    secrets: Optional[Mapping[str, str]] = None,
    http: Optional[Callable[[Request], Response]] = None,
) -> Report:
    """Runs `handler(input, cx)` once and returns its `Report`; raises as the job fails."""
    data = bytes(input) if isinstance(input, (bytes, bytearray)) else json.dumps(input).encode()
    overlap = set(config or {}) & set(secrets or {})
    if overlap:
        raise ValueError(f"`{sorted(overlap)[0]}` is in both config and secrets")
    recorder = _Recorder(
        JobInfo(job_id, module, attempt, max_attempts), config or {}, secrets or {}, http
    )
    value = handler(decode_input(data), Context(recorder))
    out = encode_result(value)
    return Report(
        result=None if out is None else decode_input(out),
        result_bytes=out,
        log=recorder.log_lines,
        progress=recorder.progress_calls,
        children=recorder.children,
    )
