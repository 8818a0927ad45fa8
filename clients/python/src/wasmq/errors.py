"""Every way a wasmq call can fail, as exception classes.

A problem+json answer (RFC 9457) is raised as the `ProblemError` subclass named by its
`type` (`https://wasmq.dev/problems/<slug>`); a slug this client does not know yet is
raised as `ProblemError` itself, which carries type, status, title and detail. Failures
of a job (not of a call) are `JobFailed` subclasses named by the job's error kind.
"""

from __future__ import annotations

from typing import Any, Dict, Optional, Type

PROBLEM_BASE = "https://wasmq.dev/problems/"


class WasmqError(Exception):
    """Base of every error this package raises."""


class ConnectionFailed(WasmqError):
    """The server could not be reached, or the connection broke before an answer came.
    For a call that is not idempotent (an enqueue without an idempotency key) the job
    may or may not have been stored: look before enqueueing again, or use a key."""


class WaitTimeout(WasmqError, TimeoutError):
    """`wait` ran out of time before the job finished; `job` is the last view of it."""

    def __init__(self, message: str, job: Any) -> None:
        super().__init__(message)
        self.job = job


class ProblemError(WasmqError):
    """An error answer of the API. `type`, `status`, `title` and `detail` come from the
    problem document; `detail` says what to do."""

    slug: str = ""

    def __init__(self, type: str, status: int, title: str, detail: str) -> None:
        super().__init__(f"{title} ({status}): {detail}")
        self.type = type
        self.status = status
        self.title = title
        self.detail = detail


class Unauthorized(ProblemError):
    """401: no key, or a key that is unknown, malformed or revoked."""

    slug = "unauthorized"


class Forbidden(ProblemError):
    """403: the key lacks the scope this call needs."""

    slug = "forbidden"


class JobNotFound(ProblemError):
    """404: no such job in this tenant."""

    slug = "job-not-found"


class ModuleNotFound(ProblemError):
    """404: no such module in this tenant; upload it first."""

    slug = "module-not-found"


class NotFound(ProblemError):
    """404: no such endpoint (a client and server of different versions?)."""

    slug = "not-found"


class MethodNotAllowed(ProblemError):
    """405: the endpoint does not take this method."""

    slug = "method-not-allowed"


class ModuleTooLarge(ProblemError):
    """413: the module is over the server's module limit."""

    slug = "module-too-large"


class InputTooLarge(ProblemError):
    """413: a job's input is over the input limit."""

    slug = "input-too-large"


class BodyTooLarge(ProblemError):
    """413: the request body is over the server's limit."""

    slug = "body-too-large"


class BatchTooLarge(ProblemError):
    """413: too many jobs in one batch; split it."""

    slug = "batch-too-large"


class InvalidModule(ProblemError):
    """422: the upload is not an acceptable module; the detail is the compiler's message."""

    slug = "invalid-module"


class LimitTooHigh(ProblemError):
    """422: a limit above the server's maximum."""

    slug = "limit-too-high"


class MalformedJson(ProblemError):
    """400: the body is not well-formed JSON."""

    slug = "malformed-json"


class InvalidRequest(ProblemError):
    """422: the request is well-formed but not what the call takes."""

    slug = "invalid-request"


class UnsupportedMediaType(ProblemError):
    """415: a body sent with the wrong content type."""

    slug = "unsupported-media-type"


class RequestTimeout(ProblemError):
    """408: the server gave up waiting for the request."""

    slug = "request-timeout"


class TooManyRequests(ProblemError):
    """429: slow down and retry."""

    slug = "too-many-requests"


class Unavailable(ProblemError):
    """503: the job store is unavailable; retry shortly."""

    slug = "unavailable"


class InternalError(ProblemError):
    """500: the server failed; the detail is in its log, never in the answer."""

    slug = "internal"


PROBLEMS: Dict[str, Type[ProblemError]] = {
    cls.slug: cls
    for cls in ProblemError.__subclasses__()
}


def problem_error(
    type: Optional[str], status: int, title: Optional[str], detail: Optional[str]
) -> ProblemError:
    """The exception for a problem document: its slug's class, else `ProblemError`."""
    t = type or "about:blank"
    slug = t[len(PROBLEM_BASE):] if t.startswith(PROBLEM_BASE) else ""
    cls = PROBLEMS.get(slug, ProblemError)
    return cls(t, status, title or f"HTTP {status}", detail or "")


class JobFailed(WasmqError):
    """A job that failed (or was cancelled): `kind` and `message` are its error."""

    kind: str = ""

    def __init__(self, message: str, job: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.job = job


class OutOfFuel(JobFailed):
    """The job used up its fuel (Wasm instructions)."""

    kind = "out_of_fuel"


class JobTimeout(JobFailed):
    """An attempt ran past its wall-clock timeout."""

    kind = "timeout"


class MemoryLimit(JobFailed):
    """The instance needed more memory than allowed."""

    kind = "memory_limit"


class OutputLimit(JobFailed):
    """The result was larger than allowed."""

    kind = "output_limit"


class Trap(JobFailed):
    """The guest trapped."""

    kind = "trap"


class TaskFailed(JobFailed):
    """The task's code raised or returned an error."""

    kind = "task_error"


class Lost(JobFailed):
    """The worker running the job vanished."""

    kind = "lost"


class ModuleMissing(JobFailed):
    """The job's pinned module bytes are gone."""

    kind = "module_missing"


class Cancelled(JobFailed):
    """The job was cancelled."""

    kind = "cancelled"


JOB_ERRORS: Dict[str, Type[JobFailed]] = {cls.kind: cls for cls in JobFailed.__subclasses__()}


def job_error_class(kind: str) -> Type[JobFailed]:
    """The `JobFailed` subclass of a job error kind (`JobFailed` for one not known yet)."""
    return JOB_ERRORS.get(kind, JobFailed)
