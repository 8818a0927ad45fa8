"""Typed views of what the API answers: jobs, modules, batch items."""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Dict, List, Mapping, Optional, Sequence, TypedDict, Union

#: States a job does not leave.
FINISHED_STATES = frozenset({"completed", "failed", "cancelled"})

_FRACTION = re.compile(r"(\.\d{6})\d+")


def parse_time(value: Optional[str]) -> Optional[datetime]:
    """An RFC 3339 time as an aware datetime (digits past microseconds are dropped)."""
    if value is None:
        return None
    text = _FRACTION.sub(r"\1", value.replace("Z", "+00:00").replace("z", "+00:00"))
    return datetime.fromisoformat(text)


def format_time(value: datetime) -> str:
    """An aware datetime as RFC 3339; a naive one is refused, not guessed."""
    if value.tzinfo is None:
        raise ValueError("run_at must be an aware datetime (give it a tzinfo, e.g. timezone.utc)")
    return value.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


@dataclass(frozen=True)
class JobError:
    """Why a job (or one attempt of it) failed: `kind` (`task_error`, `out_of_fuel`,
    `timeout`, …) and a message for a person."""

    kind: str
    message: str


@dataclass(frozen=True)
class Attempt:
    """One failed, lost or cancelled attempt of a job's history."""

    attempt: int
    at: Optional[datetime]
    kind: str
    message: str


@dataclass(frozen=True)
class Usage:
    """What the last attempt used."""

    fuel: int
    memory_peak_bytes: int
    duration_ms: int


@dataclass(frozen=True)
class Progress:
    """What the last attempt reported: 0–100 and an optional note."""

    percent: int
    note: Optional[str]


@dataclass(frozen=True)
class Job:
    """A job as the API shows it. `input` and `result` are parsed JSON; `input_bytes` and
    `result_bytes` are set instead when they are not JSON. `duplicate` is true when an
    enqueue found an existing job by its idempotency key, `coalesced` when it updated a
    waiting job of its coalesce key instead of adding one."""

    id: int
    module: str
    digest: str
    queue: str
    priority: int
    state: str
    attempt: int
    max_attempts: int
    limits: Dict[str, int]
    run_at: Optional[datetime]
    created_at: Optional[datetime]
    started_at: Optional[datetime] = None
    finished_at: Optional[datetime] = None
    idempotency_key: Optional[str] = None
    progress: Optional[Progress] = None
    input: Any = None
    input_bytes: Optional[bytes] = None
    result: Any = None
    result_bytes: Optional[bytes] = None
    error: Optional[JobError] = None
    usage: Optional[Usage] = None
    history: List[Attempt] = field(default_factory=list)
    cancel_requested: bool = False
    depends_on: List[int] = field(default_factory=list)
    dependents: int = 0
    parent_id: Optional[int] = None
    duplicate: bool = False
    coalesced: bool = False
    raw: Dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def finished(self) -> bool:
        """Whether the job is completed, failed or cancelled (it will not change again)."""
        return self.state in FINISHED_STATES

    @classmethod
    def from_json(
        cls, d: Mapping[str, Any], *, duplicate: bool = False, coalesced: bool = False
    ) -> "Job":
        """The job of an API answer."""
        err = d.get("error")
        usage = d.get("usage")
        progress = d.get("progress")
        return cls(
            id=int(d["id"]),
            module=d["module"],
            digest=d.get("digest", ""),
            queue=d.get("queue", "default"),
            priority=int(d.get("priority", 0)),
            state=d["state"],
            attempt=int(d.get("attempt", 0)),
            max_attempts=int(d.get("max_attempts", 0)),
            limits=dict(d.get("limits") or {}),
            run_at=parse_time(d.get("run_at")),
            created_at=parse_time(d.get("created_at")),
            started_at=parse_time(d.get("started_at")),
            finished_at=parse_time(d.get("finished_at")),
            idempotency_key=d.get("idempotency_key"),
            progress=Progress(progress["percent"], progress.get("note")) if progress else None,
            input=d.get("input"),
            input_bytes=_b64(d.get("input_base64")),
            result=d.get("result"),
            result_bytes=_b64(d.get("result_base64")),
            error=JobError(err["kind"], err["message"]) if err else None,
            usage=Usage(usage["fuel"], usage["memory_peak_bytes"], usage["duration_ms"])
            if usage
            else None,
            history=[
                Attempt(h["attempt"], parse_time(h.get("at")), h["kind"], h["message"])
                for h in d.get("history") or []
            ],
            cancel_requested=bool(d.get("cancel_requested", False)),
            depends_on=[int(i) for i in d.get("depends_on") or []],
            dependents=int(d.get("dependents", 0)),
            parent_id=None if d.get("parent_id") is None else int(d["parent_id"]),
            duplicate=duplicate,
            coalesced=coalesced,
            raw=dict(d),
        )


def _b64(value: Optional[str]) -> Optional[bytes]:
    return None if value is None else base64.b64decode(value)


@dataclass(frozen=True)
class Module:
    """A module version. `created` is true when a push stored new bytes, false when the
    same bytes were there already (and for listings)."""

    name: str
    version: int
    digest: str
    size: int
    kind: str
    limits: Dict[str, int]
    created_at: Optional[datetime]
    created: bool = False

    @classmethod
    def from_json(cls, d: Mapping[str, Any], *, created: bool = False) -> "Module":
        return cls(
            name=d["name"],
            version=int(d["version"]),
            digest=d["digest"],
            size=int(d["size"]),
            kind=d.get("kind", "component"),
            limits=dict(d.get("limits") or {}),
            created_at=parse_time(d.get("created_at")),
            created=created,
        )


@dataclass(frozen=True)
class BatchItem:
    """One job of a batch enqueue: its id, state, whether its idempotency key matched a
    job stored before, and whether it coalesced into a waiting job of its coalesce key."""

    id: int
    state: str
    duplicate: bool
    coalesced: bool = False


@dataclass(frozen=True)
class JobPage:
    """One page of a job listing (input and result left out) and the cursor of the next."""

    jobs: List[Job]
    next_cursor: Optional[str]


Delay = Union[float, int, timedelta]


class EnqueueOptions(TypedDict, total=False):
    """The keyword arguments of `enqueue`, each a `JobSpec` field."""

    input_bytes: bytes
    queue: str
    priority: int
    run_at: datetime
    delay: Delay
    max_attempts: int
    limits: Mapping[str, int]
    idempotency_key: str
    coalesce_key: str
    coalesce_window: Delay
    coalesce_max: Delay
    depends_on: Sequence[int]


class JobFilters(TypedDict, total=False):
    """What a job listing may be narrowed to: a state, a module, a queue, a schedule's
    ticks, a job's children."""

    state: str
    module: str
    queue: str
    schedule: str
    parent: int


@dataclass
class JobSpec:
    """A job to enqueue, as `enqueue` and `enqueue_batch` take it. `input` is any JSON
    value; `input_bytes` sends bytes instead. Give `run_at` (aware datetime) or `delay`
    (seconds or a timedelta), not both.

    Debounce with `coalesce_key` and `coalesce_window` (seconds or a timedelta): while a
    job of the key has not started, an enqueue updates it (latest input wins, its run
    time moves to now + window) instead of adding one; `coalesce_max` caps the delay
    since the first enqueue. Not with `run_at`, `delay` or `idempotency_key`.

    `depends_on` lists ids of jobs this one waits for: it is `waiting` until all have
    completed, and cancelled (`dependency_failed`) if one fails or is cancelled."""

    module: str
    input: Any = None
    input_bytes: Optional[bytes] = None
    queue: Optional[str] = None
    priority: Optional[int] = None
    run_at: Optional[datetime] = None
    delay: Optional[Delay] = None
    max_attempts: Optional[int] = None
    limits: Optional[Mapping[str, int]] = None
    idempotency_key: Optional[str] = None
    coalesce_key: Optional[str] = None
    coalesce_window: Optional[Delay] = None
    coalesce_max: Optional[Delay] = None
    depends_on: Optional[Sequence[int]] = None

    def to_json(self) -> Dict[str, Any]:
        """The request body of this job."""
        if self.run_at is not None and self.delay is not None:
            raise ValueError("give run_at or delay, not both")
        if self.input is not None and self.input_bytes is not None:
            raise ValueError("give input or input_bytes, not both")
        body: Dict[str, Any] = {"module": self.module}
        if self.input_bytes is not None:
            body["input_base64"] = base64.b64encode(self.input_bytes).decode("ascii")
        elif self.input is not None:
            body["input"] = self.input
        if self.queue is not None:
            body["queue"] = self.queue
        if self.priority is not None:
            body["priority"] = int(self.priority)
        if self.run_at is not None:
            body["run_at"] = format_time(self.run_at)
        if self.delay is not None:
            body["delay_ms"] = _millis("delay", self.delay)
        if self.max_attempts is not None:
            body["max_attempts"] = int(self.max_attempts)
        if self.limits is not None:
            body["limits"] = dict(self.limits)
        if self.idempotency_key is not None:
            body["idempotency_key"] = self.idempotency_key
        if self.coalesce_key is not None:
            body["coalesce_key"] = self.coalesce_key
        if self.coalesce_window is not None:
            body["coalesce_ms"] = _millis("coalesce_window", self.coalesce_window)
        if self.coalesce_max is not None:
            body["coalesce_max_ms"] = _millis("coalesce_max", self.coalesce_max)
        if self.depends_on:
            body["depends_on"] = [int(i) for i in self.depends_on]
        return body


def _millis(name: str, delay: Delay) -> int:
    """`delay` (seconds or a timedelta) in whole milliseconds; negative is refused."""
    seconds = delay.total_seconds() if isinstance(delay, timedelta) else delay
    if seconds < 0:
        raise ValueError(f"{name} must not be negative")
    return int(seconds * 1000)


@dataclass(frozen=True)
class JobLog:
    """A job's log (its last finished attempt's) and how many bytes were dropped past
    the log cap."""

    text: str
    dropped: int
