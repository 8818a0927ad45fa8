"""The component side of a Django tasks module: runs the task its job's module names.

The entry `manage.py wasmq_push` generates calls `serve(path, table)`; `table` maps each
wasmq module name built from this Python module to the task's attribute name. A job's
input is `{"args": [...], "kwargs": {...}}`; the task's return value is the result.
"""

import importlib
import traceback

from wasmq_task import Fatal, Retry, preload, task as _wasmq_task


def describe(error: BaseException) -> str:
    """`module.Class: message`, a blank line, then the traceback: the Django backend
    reads the class path and traceback back from this text."""
    cls = type(error)
    return f"{cls.__module__}.{cls.__qualname__}: {error}\n\n{traceback.format_exc()}"


def serve(module_path: str, table: dict) -> None:
    preload()
    module = importlib.import_module(module_path)
    tasks = {name: getattr(module, attr) for name, attr in table.items()}

    @_wasmq_task
    def run(input, cx):
        t = tasks.get(cx.job.module)
        if t is None:
            raise Fatal(f"this component holds the tasks {sorted(tasks)}, not `{cx.job.module}`; run manage.py wasmq_push")
        if not isinstance(input, dict) or not isinstance(input.get("args", []), list) \
                or not isinstance(input.get("kwargs", {}), dict):
            raise Fatal('the input must be {"args": [...], "kwargs": {...}}')
        args = list(input.get("args", []))
        kwargs = dict(input.get("kwargs", {}))
        if getattr(t, "takes_context", False):
            from django.tasks import TaskContext, TaskResult

            args.insert(0, TaskContext(TaskResult(cx.job.id, cx.job.attempt)))
        call = getattr(t, "call", t)
        try:
            return call(*args, **kwargs)
        except (Fatal, Retry):
            raise
        except Exception as e:
            # Retry, not Fatal: the job's max_attempts (the backend's MAX_ATTEMPTS)
            # decides whether another attempt comes.
            raise Retry(describe(e)) from e
