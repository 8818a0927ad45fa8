"""The component's side: the WIT export `run` over the handler `@task` marked.

Imported only inside a component built by `wasmq-task build`, where componentize-py's
generated `wit_world` bindings exist.
"""

from __future__ import annotations

import traceback
from typing import Optional

from componentize_py_types import Err
from wit_world.imports import host, types

from . import Context, Fatal, JobInfo, Retry, decode_input, encode_result, registered

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
