"""Write wasmq tasks in Python.

    from wasmq_task import task, Retry, Fatal

    @task
    def run(input, cx):
        cx.info("counting words")
        cx.enqueue("notify", {"done": True})  # a child job, made if this one completes
        if not input.get("text"):
            raise Fatal("no text")
        return {"words": len(input["text"].split())}

`cx.http` (outbound HTTP) and `cx.config(name)` are opt-in: build with `--http` and/or
`--config`, so a task that uses neither imports neither.
`wasmq-task build app.py -o app.wasm` makes the component; `wasmq_task.testing.run`
runs the handler under plain CPython for tests. One `@task` per module.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Callable, Optional, Protocol

__all__ = [
    "task", "Retry", "Fatal", "Context", "JobInfo", "Child", "decode_input", "encode_result", "preload",
    "HttpError", "HttpDenied", "HttpInvalid", "HttpFailed",
]

# A component keeps only the modules imported while it is built (at run time there are no
# files to import from), so a standard-library module a task imports lazily
# (`Counter.most_common` imports heapq) would be missing; these pure-Python ones are
# imported at build time by `preload`, which the generated entry calls.
PRELOAD = (
    "abc base64 bisect calendar collections collections.abc contextlib copy csv dataclasses "
    "datetime decimal difflib enum fractions functools hashlib heapq hmac html html.parser "
    "io itertools json math numbers operator pprint random re statistics string struct "
    "textwrap time typing unicodedata urllib.parse uuid zlib"
).split()


def preload() -> None:
    """Imports `PRELOAD`, skipping what this interpreter's build lacks."""
    import importlib

    for name in PRELOAD:
        try:
            importlib.import_module(name)
        except ImportError:
            pass


class Retry(Exception):
    """Fails this attempt; the job is retried with backoff while attempts remain."""


class Fatal(Exception):
    """Fails the job at once, whatever attempts remain."""


@dataclass(frozen=True)
class JobInfo:
    """The job being run."""

    id: str
    module: str
    attempt: int
    max_attempts: int


class _Sink(Protocol):
    def log(self, level: str, message: str) -> None: ...
    def progress(self, percent: int, note: Optional[str]) -> None: ...
    def job(self) -> JobInfo: ...
    def send(self, request: "Request") -> "Response": ...
    def config(self, name: str) -> Optional[str]: ...
    def enqueue(self, child: "Child") -> int: ...


@dataclass(frozen=True)
class Child:
    """A child job as `cx.enqueue` passes it on: the module, the input's bytes, and the
    options (None: the defaults)."""

    module: str
    input: bytes
    queue: Optional[str] = None
    priority: Optional[int] = None
    delay_ms: Optional[int] = None
    idempotency_key: Optional[str] = None


def refusal(message: str) -> Exception:
    """The host's refusal of a child as the exception a task raises: `Retry` when the
    store was unavailable (the host says "try again"), else `Fatal` (a cap, an unknown
    module, a bad name: another attempt would not change it)."""
    return Retry(message) if message.endswith("try again") else Fatal(message)


class Context:
    """What a handler gets beside its input: the job's log, progress and identity, and
    (when the component was built with `--http` / `--config`) HTTP and config."""

    def __init__(self, sink: _Sink) -> None:
        self._sink = sink
        self._job: Optional[JobInfo] = None

    @property
    def job(self) -> JobInfo:
        """id, module, attempt and max_attempts of the job being run."""
        if self._job is None:
            self._job = self._sink.job()
        return self._job

    def log(self, level: str, message: str) -> None:
        """One line in the job's log at `level` (debug, info, warn or error)."""
        if level not in ("debug", "info", "warn", "error"):
            raise ValueError(f"log level {level!r} is not debug, info, warn or error")
        self._sink.log(level, str(message))

    def debug(self, message: str) -> None:
        self.log("debug", message)

    def info(self, message: str) -> None:
        self.log("info", message)

    def warn(self, message: str) -> None:
        self.log("warn", message)

    def error(self, message: str) -> None:
        self.log("error", message)

    def progress(self, percent: int, note: Optional[str] = None) -> None:
        """Progress visible while the job runs: 0 to 100, and an optional note."""
        percent = int(percent)
        if not 0 <= percent <= 100:
            raise ValueError(f"progress {percent} is not between 0 and 100")
        self._sink.progress(percent, None if note is None else str(note))

    @property
    def http(self) -> "Http":
        """The HTTP client (`wasmq_task.http`); needs `wasmq-task build --http` and a
        module allow-list naming the hosts."""
        return Http(self._sink.send)

    def config(self, name: str) -> Optional[str]:
        """The module's config value or secret `name`, or None when it is not set; needs
        `wasmq-task build --config`. A secret written to the log shows as `[redacted]`."""
        return self._sink.config(str(name))

    def enqueue(
        self,
        module: str,
        input: Any = None,
        *,
        queue: Optional[str] = None,
        priority: Optional[int] = None,
        delay_ms: Optional[int] = None,
        idempotency_key: Optional[str] = None,
    ) -> int:
        """Enqueues a job of `module` as a child of this one and returns the id it will
        have. It is created if, and only if, this attempt completes: an attempt that
        fails leaves none, so a retry never doubles them. `input` is sent as JSON (bytes
        as they are); the queue defaults to this job's. Raises `Fatal` when the host
        refuses it (over the caps, an unknown module), `Retry` when the store was
        unavailable; catch it to go on without the child."""
        if delay_ms is not None and (not isinstance(delay_ms, int) or delay_ms < 0):
            raise ValueError(f"delay_ms {delay_ms!r} is not a whole number of milliseconds >= 0")
        data = encode_result(input)
        child = Child(str(module), b"null" if data is None else data, queue, priority, delay_ms, idempotency_key)
        return self._sink.enqueue(child)


Handler = Callable[[Any, Context], Any]

# The module's one handler, set by `@task` when the task's file is imported.
_handler: Optional[Handler] = None


def task(fn: Handler) -> Handler:
    """Marks `fn(input, cx)` as this module's task. The function is returned unchanged,
    so it can still be called directly (and tested with `wasmq_task.testing.run`)."""
    global _handler
    if _handler is not None and _handler is not fn:
        raise RuntimeError(
            f"a module has one @task; {_handler.__qualname__} is one already, "
            f"{fn.__qualname__} would be a second"
        )
    _handler = fn
    return fn


def registered() -> Handler:
    """The handler `@task` marked, or a clear error when there is none."""
    if _handler is None:
        raise RuntimeError("no @task in this module: decorate the handler with @wasmq_task.task")
    return _handler


def decode_input(data: bytes) -> Any:
    """The job's input as the handler sees it: parsed JSON, or the bytes when they are
    not UTF-8 JSON."""
    try:
        return json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return bytes(data)


def encode_result(value: Any) -> Optional[bytes]:
    """The result's bytes: bytes as they are, None for no result, anything else as JSON."""
    if value is None:
        return None
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


# Last: `http` subclasses `Fatal` and `Retry`.
from .http import Http, HttpDenied, HttpError, HttpFailed, HttpInvalid, Request, Response  # noqa: E402
