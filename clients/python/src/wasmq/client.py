"""`Client` and `AsyncClient`: the wasmq HTTP API as Python calls.

Both take the server URL and key (default: `WASMQ_URL`, `WASMQ_KEY`), raise every error
answer as its typed `ProblemError` subclass, and resend only idempotent calls (reads,
module pushes, cancels, enqueues with an idempotency key) after a connection error or a
503, with jittered exponential backoff.
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any, AsyncIterator, Iterable, Iterator, List, Mapping, Optional, TypeVar, Union, Unpack

import httpx

from . import _core
from ._core import Call
from .errors import ConnectionFailed, WaitTimeout
from .models import BatchItem, EnqueueOptions, Job, JobFilters, JobLog, JobPage, JobSpec, Module

T = TypeVar("T")
ModuleSource = Union[str, "os.PathLike[str]", bytes]


class _Base:
    """What both clients share: settings, headers, requests and the retry decision.

    `retries` is how many times an idempotent call is resent; `backoff` the first pause
    in seconds (doubling each time); `transport` an httpx transport (sync or async, to
    match the client), for tests and proxies."""

    _http_class: Any = httpx.Client

    def __init__(
        self,
        url: Optional[str] = None,
        key: Optional[str] = None,
        *,
        timeout: float = 30.0,
        retries: int = 3,
        backoff: float = 0.25,
        transport: Any = None,
    ) -> None:
        self.url, self.key = _core.settings(url, key)
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        headers = {"user-agent": "wasmq-python/0.1"}
        if self.key:
            headers["authorization"] = f"Bearer {self.key}"
        self._http = self._http_class(base_url=self.url, headers=headers, transport=transport)

    def _request(self, call: Call[Any]) -> httpx.Request:
        return self._http.build_request(
            call.method, call.path, params=call.params, json=call.json, content=call.content,
            headers=call.headers,
            timeout=httpx.Timeout(self.timeout + call.extra_timeout, connect=self.timeout),
        )

    def _retry_delay(self, call: Call[Any], error: Exception, tries: int) -> float:
        """The pause before sending `call` again after `error`; raises when it must not
        be sent again (not idempotent, not a retryable error, or out of tries)."""
        if _core.retryable(error) and call.idempotent and tries <= self.retries:
            return _core.backoff(tries, self.backoff)
        if isinstance(error, httpx.TransportError):
            hint = "" if call.idempotent else " (not resent: the call is not idempotent)"
            raise ConnectionFailed(
                f"{call.method} {self.url}{call.path} failed after {tries} "
                f"tr{'y' if tries == 1 else 'ies'}{hint}: {type(error).__name__}: {error}"
            ) from error
        raise error


class Client(_Base):
    """A synchronous client. Use it as a context manager, or call `close()`."""

    def close(self) -> None:
        """Closes the connections."""
        self._http.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, call: Call[T]) -> T:
        tries = 0
        while True:
            tries += 1
            try:
                return call.parse(_core.check(self._http.send(self._request(call))))
            except Exception as e:
                time.sleep(self._retry_delay(call, e, tries))

    def enqueue(self, module: str, input: Any = None, **options: Unpack[EnqueueOptions]) -> Job:
        """Enqueues one job of `module` with `input` (any JSON value) and returns it;
        `options` are `JobSpec`'s fields (queue, priority, run_at or delay, max_attempts,
        limits, idempotency_key, coalesce_key with coalesce_window and coalesce_max,
        depends_on, input_bytes). Raises `ModuleNotFound` for an unknown module,
        `InputTooLarge` past the input limit. With an `idempotency_key` used before, returns that job
        (`duplicate`); with the `coalesce_key` of a job that has not started, returns
        that job updated (`coalesced`)."""
        return self.submit(JobSpec(module, input, **options))

    def submit(self, spec: JobSpec) -> Job:
        """Enqueues the job `spec` describes (what `enqueue` does with its arguments)."""
        return self._call(_core.enqueue(spec))

    def enqueue_batch(self, jobs: Iterable[Union[JobSpec, Mapping[str, Any]]]) -> List[BatchItem]:
        """Enqueues up to 10,000 jobs in one transaction (all or none)."""
        return self._call(_core.enqueue_batch(jobs))

    def get(self, job_id: int) -> Job:
        """The job now. Raises `JobNotFound` for an id this tenant does not have."""
        return self._call(_core.get(job_id))

    def wait(self, job_id: int, timeout: float = 60.0) -> Job:
        """Long-polls until the job is finished and returns it; raises `WaitTimeout`
        (with the last view of the job) when `timeout` seconds pass first."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            job = self._call(_core.get(job_id, wait=min(max(remaining, 0), _core.MAX_POLL_SECONDS)))
            if job.finished:
                return job
            if time.monotonic() >= deadline:
                raise WaitTimeout(f"job {job_id} is still {job.state} after {timeout} s", job)

    def cancel(self, job_id: int) -> Job:
        """Cancels the job (a waiting one at once, a running one within a second)."""
        return self._call(_core.cancel(job_id))

    def log(self, job_id: int) -> JobLog:
        """The job's log and how many bytes were dropped past the log cap."""
        return self._call(_core.log(job_id))

    def list_jobs(
        self, *, limit: Optional[int] = None, cursor: Optional[str] = None, **filters: Unpack[JobFilters]
    ) -> JobPage:
        """One page of jobs (`limit` 1–1000, 100 by default), newest first, input and
        result left out; `filters`: state, module, queue."""
        return self._call(_core.list_jobs(filters, limit, cursor))

    def jobs(self, *, page_size: int = 100, **filters: Unpack[JobFilters]) -> Iterator[Job]:
        """Every matching job, newest first, fetched a page at a time as you iterate."""
        cursor: Optional[str] = None
        while True:
            page = self.list_jobs(limit=page_size, cursor=cursor, **filters)
            yield from page.jobs
            if not page.next_cursor:
                return
            cursor = page.next_cursor

    def push_module(
        self, name: str, module: ModuleSource, limits: Optional[Mapping[str, int]] = None
    ) -> Module:
        """Uploads a module (a .wasm path or its bytes) under `name`, with default
        limits for its jobs; the server compiles it first and refuses an invalid one
        with `InvalidModule`. `created` is false when the same bytes were there."""
        return self._call(_core.push_module(name, _core.read_module(module), limits))

    def modules(self) -> List[Module]:
        """The latest version of every module."""
        return self._call(_core.modules())

    def module_versions(self, name: str) -> List[Module]:
        """Every version of one module, newest first."""
        return self._call(_core.module_versions(name))

    def delete_module(self, name: str) -> None:
        """Deletes a module (jobs enqueued already still run their version)."""
        self._call(_core.delete_module(name))

    def set_queue_limit(self, queue: str, max_running: Optional[int]) -> Optional[int]:
        """Lets at most `max_running` of this tenant's jobs of `queue` run at once, over
        every worker (`None` removes the limit); returns the limit now set."""
        return self._call(_core.set_queue_limit(queue, max_running))


class AsyncClient(_Base):
    """The same calls as `Client`, as coroutines. Use `async with`, or `aclose()`."""

    _http_class = httpx.AsyncClient

    async def aclose(self) -> None:
        """Closes the connections."""
        await self._http.aclose()

    async def __aenter__(self) -> "AsyncClient":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def _call(self, call: Call[T]) -> T:
        tries = 0
        while True:
            tries += 1
            try:
                return call.parse(_core.check(await self._http.send(self._request(call))))
            except Exception as e:
                await asyncio.sleep(self._retry_delay(call, e, tries))

    async def enqueue(self, module: str, input: Any = None, **options: Unpack[EnqueueOptions]) -> Job:
        """See `Client.enqueue`."""
        return await self.submit(JobSpec(module, input, **options))

    async def submit(self, spec: JobSpec) -> Job:
        """See `Client.submit`."""
        return await self._call(_core.enqueue(spec))

    async def enqueue_batch(self, jobs: Iterable[Union[JobSpec, Mapping[str, Any]]]) -> List[BatchItem]:
        """See `Client.enqueue_batch`."""
        return await self._call(_core.enqueue_batch(jobs))

    async def get(self, job_id: int) -> Job:
        """See `Client.get`."""
        return await self._call(_core.get(job_id))

    async def wait(self, job_id: int, timeout: float = 60.0) -> Job:
        """See `Client.wait`."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            job = await self._call(_core.get(job_id, wait=min(max(remaining, 0), _core.MAX_POLL_SECONDS)))
            if job.finished:
                return job
            if time.monotonic() >= deadline:
                raise WaitTimeout(f"job {job_id} is still {job.state} after {timeout} s", job)

    async def cancel(self, job_id: int) -> Job:
        """See `Client.cancel`."""
        return await self._call(_core.cancel(job_id))

    async def log(self, job_id: int) -> JobLog:
        """See `Client.log`."""
        return await self._call(_core.log(job_id))

    async def list_jobs(
        self, *, limit: Optional[int] = None, cursor: Optional[str] = None, **filters: Unpack[JobFilters]
    ) -> JobPage:
        """See `Client.list_jobs`."""
        return await self._call(_core.list_jobs(filters, limit, cursor))

    async def jobs(self, *, page_size: int = 100, **filters: Unpack[JobFilters]) -> AsyncIterator[Job]:
        """See `Client.jobs`; iterate with `async for`."""
        cursor: Optional[str] = None
        while True:
            page = await self.list_jobs(limit=page_size, cursor=cursor, **filters)
            for job in page.jobs:
                yield job
            if not page.next_cursor:
                return
            cursor = page.next_cursor

    async def push_module(
        self, name: str, module: ModuleSource, limits: Optional[Mapping[str, int]] = None
    ) -> Module:
        """See `Client.push_module`."""
        return await self._call(_core.push_module(name, _core.read_module(module), limits))

    async def modules(self) -> List[Module]:
        """See `Client.modules`."""
        return await self._call(_core.modules())

    async def module_versions(self, name: str) -> List[Module]:
        """See `Client.module_versions`."""
        return await self._call(_core.module_versions(name))

    async def delete_module(self, name: str) -> None:
        """See `Client.delete_module`."""
        await self._call(_core.delete_module(name))

    async def set_queue_limit(self, queue: str, max_running: Optional[int]) -> Optional[int]:
        """See `Client.set_queue_limit`."""
        return await self._call(_core.set_queue_limit(queue, max_running))
