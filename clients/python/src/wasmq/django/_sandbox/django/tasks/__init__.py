"""Stand-in `django.tasks` inside a wasmq component: `@task` keeps the function so the
component can call it; enqueueing and results belong to the Django side."""

from __future__ import annotations

import inspect
from typing import Any, Callable, Optional

DEFAULT_TASK_BACKEND_ALIAS = "default"
DEFAULT_TASK_QUEUE_NAME = "default"
DEFAULT_TASK_PRIORITY = 0
TASK_MIN_PRIORITY = -100
TASK_MAX_PRIORITY = 100


class TaskResultStatus:
    READY = "READY"
    RUNNING = "RUNNING"
    FAILED = "FAILED"
    SUCCESSFUL = "SUCCESSFUL"


class _Unavailable(RuntimeError):
    pass


class TaskResult:
    """What a task that takes context sees of its own job: `id` and `attempts`."""

    def __init__(self, id: str, attempts: int) -> None:
        self.id = id
        self.attempts = attempts
        self.worker_ids = ["wasmq"] * attempts


class TaskContext:
    """The `context` a `takes_context=True` task gets as its first argument."""

    def __init__(self, task_result: TaskResult) -> None:
        self.task_result = task_result

    @property
    def attempt(self) -> int:
        return self.task_result.attempts


class Task:
    """A task function and its defaults, as `@task` made it."""

    def __init__(self, func: Callable[..., Any], priority: int = DEFAULT_TASK_PRIORITY,
                 queue_name: str = DEFAULT_TASK_QUEUE_NAME, backend: str = DEFAULT_TASK_BACKEND_ALIAS,
                 takes_context: bool = False, run_after: Any = None) -> None:
        self.func = func
        self.priority = priority
        self.queue_name = queue_name
        self.backend = backend
        self.takes_context = takes_context
        self.run_after = run_after

    @property
    def name(self) -> str:
        return self.func.__name__

    @property
    def module_path(self) -> str:
        return f"{self.func.__module__}.{self.func.__qualname__}"

    def using(self, **changes: Any) -> "Task":
        return self

    def call(self, *args: Any, **kwargs: Any) -> Any:
        value = self.func(*args, **kwargs)
        return _drive(value) if inspect.iscoroutine(value) else value

    def enqueue(self, *args: Any, **kwargs: Any) -> Any:
        raise _Unavailable("a task cannot enqueue from inside the wasmq sandbox; return a value instead")

    aenqueue = enqueue
    get_result = enqueue


def _drive(coro: Any) -> Any:
    # No event loop in the sandbox: an async task runs to its end if it awaits nothing
    # that would need one (there is no I/O to await here anyway).
    try:
        coro.send(None)
    except StopIteration as done:
        return done.value
    coro.close()
    raise _Unavailable("an async task awaited I/O, which the wasmq sandbox does not have")


def task(function: Optional[Callable[..., Any]] = None, *, priority: int = DEFAULT_TASK_PRIORITY,
         queue_name: str = DEFAULT_TASK_QUEUE_NAME, backend: str = DEFAULT_TASK_BACKEND_ALIAS,
         takes_context: bool = False, **kwargs: Any) -> Any:
    """`@task` or `@task(priority=…, queue_name=…, takes_context=…)`, as in Django."""

    def wrapper(f: Callable[..., Any]) -> Task:
        return Task(f, priority, queue_name, backend, takes_context)

    return wrapper(function) if function is not None else wrapper


__all__ = ["task", "Task", "TaskContext", "TaskResult", "TaskResultStatus",
           "DEFAULT_TASK_BACKEND_ALIAS", "DEFAULT_TASK_QUEUE_NAME"]
