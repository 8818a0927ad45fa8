"""What the sync and async clients share: each call as a `Call` (request and how to read
its answer), answers checked into typed exceptions, and the retry policy."""

from __future__ import annotations

import os
import random
from dataclasses import dataclass
from typing import Any, Callable, Dict, Generic, Iterable, Mapping, Optional, TypeVar, Union
from urllib.parse import quote

import httpx

from .errors import ProblemError, Unavailable, problem_error
from .models import BatchItem, Job, JobLog, JobPage, JobSpec, Module

T = TypeVar("T")

DEFAULT_URL = "http://127.0.0.1:8080"
# The server compiles a module before it answers its upload: a large component (an
# interpreter) on a busy machine takes minutes, so the answer gets this long.
PUSH_SECONDS = 600.0
# The server answers a long poll after at most this long; longer waits are several polls.
MAX_POLL_SECONDS = 60.0


@dataclass
class Call(Generic[T]):
    """One API call. `idempotent` calls may be sent again after a connection error."""

    method: str
    path: str
    parse: Callable[[httpx.Response], T]
    idempotent: bool
    params: Optional[Dict[str, Any]] = None
    json: Any = None
    content: Optional[bytes] = None
    headers: Optional[Dict[str, str]] = None
    extra_timeout: float = 0.0


def settings(url: Optional[str], key: Optional[str]) -> tuple[str, Optional[str]]:
    """The server URL and key: the arguments, else `WASMQ_URL` / `WASMQ_KEY`."""
    url = url or os.environ.get("WASMQ_URL") or DEFAULT_URL
    key = key if key is not None else os.environ.get("WASMQ_KEY")
    return url.rstrip("/"), key


def check(response: httpx.Response) -> httpx.Response:
    """The response when it is a success; else its problem as a typed exception."""
    if response.status_code < 400:
        return response
    doc: Any = None
    if "json" in response.headers.get("content-type", ""):
        try:
            doc = response.json()
        except ValueError:
            doc = None
    if isinstance(doc, dict):
        raise problem_error(doc.get("type"), response.status_code, doc.get("title"), doc.get("detail"))
    # Not a problem document (a proxy's page, say): keep what it said, cut short.
    text = response.text[:4096]
    raise problem_error(None, response.status_code, response.reason_phrase, text)


def retryable(error: BaseException) -> bool:
    """Whether an idempotent call may be sent again after `error`."""
    return isinstance(error, (httpx.TransportError, Unavailable))


def backoff(attempt: int, base: float) -> float:
    """Seconds to wait before retry number `attempt` (1, 2, …): exponential, jittered,
    at most 5 s."""
    return min(5.0, base * (2 ** (attempt - 1))) * (0.5 + random.random() / 2)


def _job(r: httpx.Response) -> Job:
    d = r.json()
    coalesced = bool(d.get("coalesced", False))
    return Job.from_json(d, duplicate=r.status_code == 200 and not coalesced, coalesced=coalesced)


def enqueue(spec: JobSpec) -> Call[Job]:
    # With an idempotency key the server returns the stored job to a repeat, and with a
    # coalesce key a repeat updates the waiting job (at worst, once it has started, makes
    # one more run of the same input, as any later enqueue would): resending is safe.
    # Without either, a resend after a broken connection could make a second job.
    keyed = spec.idempotency_key is not None or spec.coalesce_key is not None
    return Call("POST", "/v1/jobs", _job, keyed, json=spec.to_json())


def enqueue_batch(specs: Iterable[Union[JobSpec, Mapping[str, Any]]]) -> Call[list]:
    jobs = [s.to_json() if isinstance(s, JobSpec) else dict(s) for s in specs]
    keyed = all(j.get("idempotency_key") is not None for j in jobs)

    def parse(r: httpx.Response) -> list:
        return [
            BatchItem(int(j["id"]), j["state"], bool(j["duplicate"]), bool(j.get("coalesced", False)))
            for j in r.json()["jobs"]
        ]

    return Call("POST", "/v1/jobs/batch", parse, keyed, json={"jobs": jobs})


def get(job_id: int, wait: Optional[float] = None) -> Call[Job]:
    params = None
    extra = 0.0
    if wait is not None and wait > 0:
        params = {"wait": f"{int(wait * 1000)}ms"}
        extra = wait
    return Call(
        "GET", f"/v1/jobs/{int(job_id)}", lambda r: Job.from_json(r.json()), True,
        params=params, extra_timeout=extra,
    )


def cancel(job_id: int) -> Call[Job]:
    # Cancelling twice is cancelling once.
    return Call("POST", f"/v1/jobs/{int(job_id)}/cancel", lambda r: Job.from_json(r.json()), True)


def log(job_id: int) -> Call[JobLog]:
    def parse(r: httpx.Response) -> JobLog:
        return JobLog(r.text, int(r.headers.get("wasmq-log-dropped", "0") or 0))

    return Call("GET", f"/v1/jobs/{int(job_id)}/log", parse, True)


def list_jobs(filters: Mapping[str, Any], limit: Optional[int], cursor: Optional[str]) -> Call[JobPage]:
    unknown = set(filters) - {"state", "module", "queue", "schedule", "parent"}
    if unknown:
        raise TypeError(
            f"jobs can be filtered by state, module, queue, schedule and parent, not {', '.join(sorted(unknown))}"
        )
    given = {**filters, "limit": limit, "cursor": cursor}
    params = {k: v for k, v in given.items() if v is not None}

    def parse(r: httpx.Response) -> JobPage:
        d = r.json()
        return JobPage([Job.from_json(j) for j in d["jobs"]], d.get("next_cursor"))

    return Call("GET", "/v1/jobs", parse, True, params=params)


def push_module(name: str, data: bytes, limits: Optional[Mapping[str, int]]) -> Call[Module]:
    # The same bytes again answer 200 and change nothing, so a resend is safe.
    return Call(
        "PUT", f"/v1/modules/{quote(name, safe='')}",
        lambda r: Module.from_json(r.json(), created=r.status_code == 201), True,
        params=dict(limits) if limits else None, content=data,
        headers={"content-type": "application/wasm"}, extra_timeout=PUSH_SECONDS,
    )


def modules() -> Call[list]:
    return Call("GET", "/v1/modules", lambda r: [Module.from_json(m) for m in r.json()["modules"]], True)


def module_versions(name: str) -> Call[list]:
    return Call(
        "GET", f"/v1/modules/{quote(name, safe='')}",
        lambda r: [Module.from_json(m) for m in r.json()["modules"]], True,
    )


def delete_module(name: str) -> Call[None]:
    return Call("DELETE", f"/v1/modules/{quote(name, safe='')}", lambda r: None, True)


def set_queue_limit(queue: str, max_running: Optional[int]) -> Call[Optional[int]]:
    # A PUT of the same limit again changes nothing, so a resend is safe.
    return Call(
        "PUT", f"/v1/queues/{quote(queue, safe='')}/limit",
        lambda r: r.json().get("max_running"), True, json={"max_running": max_running},
    )


def read_module(path_or_bytes: Union[str, os.PathLike, bytes]) -> bytes:
    """The bytes of a module given as bytes or as a path to a .wasm file."""
    if isinstance(path_or_bytes, (bytes, bytearray, memoryview)):
        return bytes(path_or_bytes)
    with open(path_or_bytes, "rb") as f:
        return f.read()


__all__ = ["Call", "ProblemError"]
