"""`WasmqBackend`: a `django.tasks` backend whose tasks run as wasmq jobs.

A task is enqueued as a job of the wasmq module `OPTIONS["MODULES"]` names for it (else
its default name, see `naming`), with the input `{"args": [...], "kwargs": {...},
"task": "<module path>"}`; the task path lets any process rebuild the result.
"""

from __future__ import annotations

import os
import re
import sys
import uuid
from collections import OrderedDict
from typing import Any, Dict, List, Optional, Tuple

from asgiref.sync import sync_to_async
from django.apps import apps
from django.db import transaction
from django.utils import timezone
from django.utils.module_loading import import_string

from ..client import AsyncClient, Client
from ..errors import JobNotFound, ModuleNotFound, job_error_class
from ..models import Job, JobSpec
from ._compat import (
    BaseTaskBackend,
    InvalidTask,
    Task,
    TaskError,
    TaskResult,
    TaskResultDoesNotExist,
    TaskResultStatus,
    normalize_json,
    task_enqueued,
    task_finished,
)
from .naming import module_name

_STATUS = {
    "scheduled": TaskResultStatus.READY,
    "available": TaskResultStatus.READY,
    "retryable": TaskResultStatus.READY,
    "running": TaskResultStatus.RUNNING,
    "completed": TaskResultStatus.SUCCESSFUL,
    "failed": TaskResultStatus.FAILED,
    "cancelled": TaskResultStatus.FAILED,
}
# What the sandbox's entry writes for an exception: `path.Class: message`, a blank line,
# the traceback (see _sandbox/wasmq_django_guest.py).
_RAISED = re.compile(r"^(?P<path>[A-Za-z_][\w.]*): .*?\n\n(?P<tb>Traceback .*)$", re.S)
# Results seen finished, so `task_finished` fires once per result in this process.
_REMEMBERED = 10_000


class WasmqBackend(BaseTaskBackend):
    """Runs Django tasks as wasmq jobs. OPTIONS: `URL` and `KEY` (default `WASMQ_URL`,
    `WASMQ_KEY`), `MODULES` (task path → module name), `ENQUEUE_ON_COMMIT` (False),
    `MAX_ATTEMPTS` (1: a task that raises has failed, as in Django), `LIMITS` (each
    job's limits), `TIMEOUT` (30 s a call), `RETRIES` (3, idempotent calls only)."""

    supports_defer = True
    supports_async_task = True
    supports_get_result = True
    supports_priority = True

    def __init__(self, alias: str, params: dict) -> None:
        super().__init__(alias, params)
        o = self.options
        self.url: Optional[str] = o.get("URL")
        self.key: Optional[str] = o.get("KEY")
        self.modules: Dict[str, str] = dict(o.get("MODULES", {}))
        self.enqueue_on_commit = bool(o.get("ENQUEUE_ON_COMMIT", False))
        self.max_attempts = int(o.get("MAX_ATTEMPTS", 1))
        self.limits: Optional[Dict[str, int]] = o.get("LIMITS")
        self.timeout = float(o.get("TIMEOUT", 30.0))
        self.retries = int(o.get("RETRIES", 3))
        self._client: Optional[Client] = None
        self._pending: "OrderedDict[str, str]" = OrderedDict()
        self._finished: "OrderedDict[str, None]" = OrderedDict()

    def check(self, **kwargs: Any) -> List[Any]:
        """`manage.py check`: a backend without a key cannot enqueue anything."""
        from django.core import checks

        found = list(super().check(**kwargs))
        if not (self.key or os.environ.get("WASMQ_KEY")):
            found.append(checks.Warning(
                f"TASKS[{self.alias!r}] has no wasmq key, so every enqueue will be refused",
                hint="set OPTIONS['KEY'] or WASMQ_KEY (make a key with `wasmq key create`)",
                id="wasmq.W001",
            ))
        return found

    # --- clients -------------------------------------------------------------------

    @property
    def client(self) -> Client:
        """The backend's `Client` (made on first use)."""
        if self._client is None:
            self._client = Client(self.url, self.key, timeout=self.timeout, retries=self.retries)
        return self._client

    def async_client(self) -> AsyncClient:
        """A new `AsyncClient` for one coroutine's calls (an event loop owns its client)."""
        return AsyncClient(self.url, self.key, timeout=self.timeout, retries=self.retries)

    def module_for(self, task: Task) -> str:
        """The wasmq module name that runs `task`."""
        return module_name(task.module_path, self.modules)

    # --- enqueue -------------------------------------------------------------------

    def _new_result(self, task: Task, args: Any, kwargs: Any) -> TaskResult:
        self.validate_task(task)
        return TaskResult(
            task=task, id=f"pending-{uuid.uuid4().hex}", status=TaskResultStatus.READY,
            enqueued_at=None, started_at=None, finished_at=None, last_attempted_at=None,
            args=list(args), kwargs=dict(kwargs), backend=self.alias, errors=[], worker_ids=[],
        )

    def _spec(self, result: TaskResult) -> JobSpec:
        task = result.task
        run_at = task.run_after
        if run_at is not None and timezone.is_naive(run_at):  # USE_TZ = False: local time
            run_at = timezone.make_aware(run_at)
        return JobSpec(
            self.module_for(task),
            {"args": result.args, "kwargs": result.kwargs, "task": task.module_path},
            queue=task.queue_name, priority=task.priority, run_at=run_at,
            max_attempts=self.max_attempts, limits=self.limits,
        )

    def _enqueued(self, result: TaskResult, job: Job) -> None:
        self._pending[result.id] = str(job.id)
        while len(self._pending) > _REMEMBERED:
            self._pending.popitem(last=False)
        object.__setattr__(result, "id", str(job.id))
        self._apply(result, job)
        task_enqueued.send(type(self), task_result=result)
        self._maybe_finished(result)

    def _send(self, result: TaskResult) -> None:
        spec = self._spec(result)
        try:
            job = self.client.submit(spec)
        except ModuleNotFound as e:
            raise _unknown_module(e, result.task, spec.module) from None
        self._enqueued(result, job)

    def enqueue(self, task: Task, args: Any, kwargs: Any) -> TaskResult:
        """Enqueues `task` as a wasmq job. With `ENQUEUE_ON_COMMIT` inside a transaction,
        the job is sent when it commits (and never if it rolls back); the result's id
        is `pending-…` until then. An unknown module raises `ModuleNotFound` and stores
        nothing; an unreachable server raises `ConnectionFailed`."""
        result = self._new_result(task, args, kwargs)
        if self.enqueue_on_commit:
            # robust=False: a failed send raises out of the commit, never passes unseen.
            transaction.on_commit(lambda: self._send(result), using=self.options.get("DATABASE"))
        else:
            self._send(result)
        return result

    async def aenqueue(self, task: Task, args: Any, kwargs: Any) -> TaskResult:
        """`enqueue` as a coroutine (on-commit deferral goes through the sync path)."""
        if self.enqueue_on_commit:
            return await sync_to_async(self.enqueue, thread_sensitive=True)(task, args, kwargs)
        result = self._new_result(task, args, kwargs)
        spec = self._spec(result)
        async with self.async_client() as c:
            try:
                job = await c.submit(spec)
            except ModuleNotFound as e:
                raise _unknown_module(e, task, spec.module) from None
        self._enqueued(result, job)
        return result

    # --- results -------------------------------------------------------------------

    def _job_id(self, result_id: str) -> int:
        rid = self._pending.get(result_id, result_id)
        if rid.startswith("pending-"):
            raise TaskResultDoesNotExist(
                f"{result_id} is not enqueued yet: its transaction has not committed"
            )
        try:
            return int(rid)
        except ValueError:
            raise TaskResultDoesNotExist(f"{result_id!r} is not a wasmq job id") from None

    def get_result(self, result_id: str) -> TaskResult:
        """The task result of job `result_id`, read from wasmq; `TaskResultDoesNotExist`
        for an id that is no job of this key's tenant, or no Django task's job."""
        try:
            job = self.client.get(self._job_id(result_id))
        except JobNotFound:
            raise TaskResultDoesNotExist(f"no wasmq job {result_id}") from None
        return self._result_of(job)

    async def aget_result(self, result_id: str) -> TaskResult:
        """`get_result` as a coroutine."""
        async with self.async_client() as c:
            try:
                job = await c.get(self._job_id(result_id))
            except JobNotFound:
                raise TaskResultDoesNotExist(f"no wasmq job {result_id}") from None
        return self._result_of(job)

    def _result_of(self, job: Job) -> TaskResult:
        data = job.input if isinstance(job.input, dict) else {}
        path = data.get("task")
        if not isinstance(path, str):
            raise TaskResultDoesNotExist(f"wasmq job {job.id} was not enqueued by a Django task")
        if not _may_import(path):
            raise TaskResultDoesNotExist(f"job {job.id} names {path}, which is no task of this project's apps")
        try:
            task = import_string(path)
        except ImportError:
            raise TaskResultDoesNotExist(f"job {job.id} ran task {path}, which this project lacks") from None
        if not isinstance(task, Task):
            raise TaskResultDoesNotExist(f"job {job.id} names {path}, which is not a task")
        try:
            task = task.using(priority=job.priority, queue_name=job.queue, backend=self.alias)
        except InvalidTask:  # a queue this backend no longer lists: keep the task's own
            task = task.using(priority=job.priority, backend=self.alias)
        result = TaskResult(
            task=task, id=str(job.id), status=TaskResultStatus.READY, enqueued_at=None,
            started_at=None, finished_at=None, last_attempted_at=None,
            args=list(data.get("args", [])), kwargs=dict(data.get("kwargs", {})),
            backend=self.alias, errors=[], worker_ids=[],
        )
        self._apply(result, job)
        self._maybe_finished(result)
        return result

    def _apply(self, result: TaskResult, job: Job) -> None:
        set_ = object.__setattr__
        set_(result, "status", _STATUS.get(job.state, TaskResultStatus.READY))
        set_(result, "enqueued_at", job.created_at)
        set_(result, "started_at", job.started_at)
        set_(result, "last_attempted_at", job.started_at)
        set_(result, "finished_at", job.finished_at)
        set_(result, "worker_ids", ["wasmq"] * job.attempt)
        set_(result, "errors", [TaskError(exception_class_path=p, traceback=t) for p, t in _errors(job)])
        if job.state == "completed":
            value = job.result if job.result_bytes is None else job.result_bytes
            set_(result, "_return_value", normalize_json(value) if value is not None else None)

    def _maybe_finished(self, result: TaskResult) -> None:
        if result.status not in (TaskResultStatus.SUCCESSFUL, TaskResultStatus.FAILED):
            return
        if result.id in self._finished:
            return
        self._finished[result.id] = None
        while len(self._finished) > _REMEMBERED:
            self._finished.popitem(last=False)
        task_finished.send(type(self), task_result=result)


def _may_import(path: str) -> bool:
    """Whether a task path read from a job may be imported: a job's input is anyone's
    with a key, so only modules loaded already or inside an installed app qualify."""
    module = path.rpartition(".")[0]
    if module in sys.modules:
        return True
    return any(module.startswith(app.name + ".") for app in apps.get_app_configs())


def _unknown_module(e: ModuleNotFound, task: Task, module: str) -> ModuleNotFound:
    return ModuleNotFound(
        e.type, e.status, e.title,
        f"task {task.module_path} runs as the wasmq module `{module}`, which this server "
        "does not have: run `manage.py wasmq_push` (or map the task in OPTIONS['MODULES'])",
    )


def _errors(job: Job) -> List[Tuple[str, str]]:
    """Each failed attempt's error as (exception class path, traceback), oldest first;
    the job's final error is the last attempt's, so it is not added twice."""
    found = [(h.kind, h.message) for h in job.history]
    if job.error is not None and (job.error.kind, job.error.message) not in found[-1:]:
        found.append((job.error.kind, job.error.message))
    out = []
    for kind, message in found:
        m = _RAISED.match(message) if kind == "task_error" else None
        if m:
            out.append((m.group("path"), m.group("tb")))
        else:
            cls = job_error_class(kind)
            out.append((f"{cls.__module__}.{cls.__qualname__}", f"{kind}: {message}"))
    return out
