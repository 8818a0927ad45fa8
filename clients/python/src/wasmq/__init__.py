"""A client for wasmq, the job queue whose jobs are WebAssembly components.

    from wasmq import Client
    with Client("http://127.0.0.1:8080", key) as wq:     # or WASMQ_URL / WASMQ_KEY
        job = wq.enqueue("wordcount", {"text": "a b c"})
        print(wq.wait(job.id).result)

`AsyncClient` has the same calls as coroutines. Errors are typed (`wasmq.errors`);
`wasmq.django.WasmqBackend` is a `django.tasks` backend.
"""

from .client import AsyncClient, Client
from .errors import (
    ConnectionFailed,
    JobFailed,
    JobNotFound,
    ModuleNotFound,
    ProblemError,
    Unauthorized,
    WaitTimeout,
    WasmqError,
)
from .models import Attempt, BatchItem, Job, JobError, JobLog, JobPage, JobSpec, Module, Progress, Usage

__all__ = [
    "AsyncClient", "Client", "ConnectionFailed", "JobFailed", "JobNotFound", "ModuleNotFound",
    "ProblemError", "Unauthorized", "WaitTimeout", "WasmqError", "Attempt", "BatchItem", "Job",
    "JobError", "JobLog", "JobPage", "JobSpec", "Module", "Progress", "Usage",
]
__version__ = "0.1.0"
