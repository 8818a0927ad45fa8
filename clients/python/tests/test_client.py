"""The client against a real `wasmq serve` (both stores), plus loopback servers that
answer problems or hang up, for the error and retry paths."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone

import httpx
import pytest

import wasmq
from wasmq import _core, errors
from fakes import Hangup, problem_server
from servers import free_port

REINDEX = "pages-tasks-reindex_page"


def reindex_input(page_id: int, title: str = "Hello world", body: str = "hello there") -> dict:
    return {"args": [page_id, title, body], "kwargs": {}}


def test_enqueue_wait_and_result(client: wasmq.Client) -> None:
    job = client.enqueue(REINDEX, reindex_input(1, "Tides", "tides and tides"), priority=5)
    assert job.module == REINDEX and job.priority == 5
    done = client.wait(job.id, timeout=60)
    assert done.state == "completed", done.error
    assert done.result == {"page_id": 1, "terms": {"tides": 5}, "words": 3}
    assert done.finished and done.finished_at is not None
    assert client.get(job.id).result == done.result
    assert isinstance(client.log(job.id).text, str)


def test_a_failing_job_carries_its_error(client: wasmq.Client) -> None:
    job = client.enqueue(REINDEX, reindex_input(2, ""), max_attempts=1)
    done = client.wait(job.id, timeout=60)
    assert done.state == "failed"
    assert done.error is not None and done.error.kind == "task_error"
    assert done.error.message.startswith("builtins.ValueError: page 2 has no title")


def test_unknown_module_is_module_not_found_and_stores_nothing(client: wasmq.Client) -> None:
    before = [j.id for j in client.jobs()]
    with pytest.raises(errors.ModuleNotFound) as e:
        client.enqueue("no-such-module", {"x": 1})
    assert e.value.status == 404 and "PUT /v1/modules/no-such-module" in e.value.detail
    assert [j.id for j in client.jobs()] == before


def test_wrong_key_is_unauthorized(server) -> None:
    with wasmq.Client(server.url, "wq_nope_nope") as c, pytest.raises(errors.Unauthorized) as e:
        c.get(1)
    assert e.value.type == "https://wasmq.dev/problems/unauthorized"
    assert "wasmq key create" in e.value.detail


def test_typed_errors_for_jobs_modules_and_inputs(client: wasmq.Client) -> None:
    with pytest.raises(errors.JobNotFound):
        client.get(987654321)
    with pytest.raises(errors.InvalidModule):
        client.push_module("not-wasm", b"this is not wasm")
    with pytest.raises(errors.InputTooLarge):
        client.enqueue(REINDEX, {"args": ["x" * (1 << 20)], "kwargs": {}})
    with pytest.raises(errors.InvalidRequest):
        client.push_module("Bad Name", b"\0asm")
    with pytest.raises(ValueError, match="aware"):
        client.enqueue(REINDEX, {}, run_at=datetime(2030, 1, 1))


def test_unknown_problem_types_keep_their_fields() -> None:
    answers = {
        "/v1/jobs/1": (429, "application/problem+json", {
            "type": "https://wasmq.dev/problems/too-many-requests", "title": "Too many requests",
            "status": 429, "detail": "slow down"}),
        "/v1/jobs/2": (418, "application/problem+json", {
            "type": "https://wasmq.dev/problems/brand-new", "title": "Something new",
            "status": 418, "detail": "a slug this client has not heard of"}),
        "/v1/jobs/3": (502, "text/html", {"not": "a problem"}),
    }
    with problem_server(answers) as url, wasmq.Client(url, "k", retries=0) as c:
        with pytest.raises(errors.TooManyRequests) as known:
            c.get(1)
        assert known.value.detail == "slow down"
        with pytest.raises(errors.ProblemError) as unknown:
            c.get(2)
        assert type(unknown.value) is errors.ProblemError
        assert (unknown.value.type, unknown.value.status, unknown.value.title) == (
            "https://wasmq.dev/problems/brand-new", 418, "Something new")
        assert unknown.value.detail == "a slug this client has not heard of"
        with pytest.raises(errors.ProblemError) as proxy:
            c.get(3)
        assert proxy.value.status == 502 and "not" in proxy.value.detail


def test_only_idempotent_calls_are_resent() -> None:
    hangup = Hangup()
    try:
        with wasmq.Client(hangup.url, "k", retries=2, backoff=0.01) as c:
            with pytest.raises(errors.ConnectionFailed, match="after 3 tries"):
                c.get(1)
            assert hangup.connections == 3
            with pytest.raises(errors.ConnectionFailed, match="not resent"):
                c.enqueue("m", {"a": 1})
            assert hangup.connections == 4
            with pytest.raises(errors.ConnectionFailed, match="after 3 tries"):
                c.enqueue("m", {"a": 1}, idempotency_key="k1")
            assert hangup.connections == 7
    finally:
        hangup.close()


def test_a_dependent_runs_after_its_dependency(client: wasmq.Client) -> None:
    first = client.enqueue(REINDEX, reindex_input(3, "Parts", "one part"))
    report = client.enqueue(REINDEX, reindex_input(4, "Report", "the report"), depends_on=[first.id])
    assert report.depends_on == [first.id]
    done = client.wait(report.id, timeout=60)
    assert done.state == "completed", done.error
    parent = client.get(first.id)
    assert parent.state == "completed" and parent.dependents == 1
    assert done.started_at is not None and parent.finished_at is not None
    assert done.started_at >= parent.finished_at
    with pytest.raises(errors.InvalidRequest):
        client.enqueue(REINDEX, reindex_input(5), depends_on=[first.id + 1_000_000])


def test_a_queue_limit_is_set_and_removed(client: wasmq.Client) -> None:
    assert client.set_queue_limit("mail", 2) == 2
    assert client.set_queue_limit("mail", 2) == 2, "setting it again changes nothing"
    assert client.set_queue_limit("mail", None) is None
    with pytest.raises(errors.InvalidRequest):
        client.set_queue_limit("Not A Queue", 1)


def test_dependency_fields() -> None:
    spec = wasmq.JobSpec("m", 1, depends_on=(4, 5))
    assert spec.to_json() == {"module": "m", "input": 1, "depends_on": [4, 5]}
    assert "depends_on" not in wasmq.JobSpec("m", 1, depends_on=[]).to_json()
    answer = {"id": 6, "module": "m", "state": "waiting", "depends_on": [4, 5], "dependents": 2}
    job = _core.enqueue(spec).parse(httpx.Response(202, json=answer))
    assert (job.state, job.depends_on, job.dependents) == ("waiting", [4, 5], 2)


def test_coalescing_fields_answers_and_resends() -> None:
    spec = wasmq.JobSpec(
        "m", {"page": 7}, coalesce_key="reindex:7", coalesce_window=1.5,
        coalesce_max=timedelta(minutes=1),
    )
    assert spec.to_json() == {
        "module": "m", "input": {"page": 7}, "coalesce_key": "reindex:7",
        "coalesce_ms": 1500, "coalesce_max_ms": 60000,
    }
    with pytest.raises(ValueError, match="coalesce_window"):
        wasmq.JobSpec("m", coalesce_key="k", coalesce_window=-1).to_json()
    answer = {"id": 3, "module": "m", "state": "scheduled", "coalesced": True}
    job = _core.enqueue(spec).parse(httpx.Response(200, json=answer))
    assert (job.id, job.coalesced, job.duplicate) == (3, True, False)
    found = _core.enqueue(spec).parse(httpx.Response(200, json={**answer, "coalesced": False}))
    assert (found.coalesced, found.duplicate) == (False, True)
    batch = {"jobs": [{"id": 3, "state": "scheduled", "duplicate": False, "coalesced": True},
                      {"id": 4, "state": "available", "duplicate": False}]}
    items = _core.enqueue_batch([spec]).parse(httpx.Response(202, json=batch))
    assert [i.coalesced for i in items] == [True, False]
    # A coalesced enqueue sent again updates the same waiting job: it is resent.
    hangup = Hangup()
    try:
        with wasmq.Client(hangup.url, "k", retries=2, backoff=0.01) as c:
            with pytest.raises(errors.ConnectionFailed, match="after 3 tries"):
                c.enqueue("m", {}, coalesce_key="k", coalesce_window=1)
    finally:
        hangup.close()


def test_a_server_that_is_down_is_a_clear_error() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with wasmq.Client(url, "k", retries=1, backoff=0.01) as c:
        with pytest.raises(errors.ConnectionFailed) as e:
            c.enqueue("m", {})
    assert url in str(e.value) and "ConnectError" in str(e.value)


def test_idempotency_key_returns_the_same_job(client: wasmq.Client) -> None:
    a = client.enqueue(REINDEX, reindex_input(3), idempotency_key="page-3", delay=3600)
    b = client.enqueue(REINDEX, reindex_input(3), idempotency_key="page-3", delay=3600)
    assert a.id == b.id and not a.duplicate and b.duplicate
    assert client.cancel(a.id).state == "cancelled"


def test_listing_iterates_over_every_page(client: wasmq.Client) -> None:
    items = client.enqueue_batch(
        [wasmq.JobSpec(REINDEX, reindex_input(10 + i), queue="mail", delay=timedelta(hours=1)) for i in range(5)]
    )
    ids = [i.id for i in items]
    listed = [j.id for j in client.jobs(queue="mail", state="scheduled", page_size=2)]
    assert [i for i in listed if i in ids] == sorted(ids, reverse=True)
    page = client.list_jobs(queue="mail", state="scheduled", limit=2)
    assert len(page.jobs) == 2 and page.next_cursor
    for i in ids:
        client.cancel(i)


def test_run_at_is_kept(client: wasmq.Client) -> None:
    when = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(hours=2)
    job = client.enqueue(REINDEX, reindex_input(4), run_at=when)
    assert job.state == "scheduled" and job.run_at == when
    client.cancel(job.id)


def test_modules_lists_what_was_pushed(client: wasmq.Client) -> None:
    names = {m.name for m in client.modules()}
    assert {REINDEX, "pages-tasks-notify_subscribers", "pages-tasks-summarize"} <= names
    versions = client.module_versions(REINDEX)
    again = client.push_module(REINDEX, _module_bytes(client, versions[0].digest))
    assert again.created is False and again.digest == versions[0].digest


def _module_bytes(client: wasmq.Client, digest: str) -> bytes:
    from conftest import CACHE

    for f in (CACHE / "components").glob("pages-tasks-*.wasm"):
        import hashlib

        data = f.read_bytes()
        if hashlib.sha256(data).hexdigest() == digest:
            return data
    raise AssertionError(f"no built component has digest {digest}")


def test_async_client(server) -> None:
    async def main() -> None:
        async with wasmq.AsyncClient(server.url, server.key) as c:
            job = await c.enqueue(REINDEX, reindex_input(5, "Async", "async works"))
            done = await c.wait(job.id, timeout=60)
            assert done.result["terms"]["async"] == 4
            seen = [j.id async for j in c.jobs(module=REINDEX, page_size=1)]
            assert job.id in seen
            with pytest.raises(errors.ModuleNotFound):
                await c.enqueue("no-such-module", {})

    asyncio.run(main())


def test_wait_times_out_with_the_job(client: wasmq.Client) -> None:
    job = client.enqueue(REINDEX, reindex_input(6), delay=3600)
    with pytest.raises(errors.WaitTimeout) as e:
        client.wait(job.id, timeout=0.3)
    assert e.value.job.id == job.id and e.value.job.state == "scheduled"
    client.cancel(job.id)


def test_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch, server) -> None:
    monkeypatch.setenv("WASMQ_URL", server.url)
    monkeypatch.setenv("WASMQ_KEY", server.key)
    with wasmq.Client() as c:
        assert any(m.name == REINDEX for m in c.modules())


def test_child_jobs_are_listed_by_parent() -> None:
    call = _core.list_jobs({"parent": 6, "schedule": "nightly"}, 10, None)
    assert call.params == {"parent": 6, "schedule": "nightly", "limit": 10}
    page = {"jobs": [{"id": 7, "module": "m", "state": "available", "parent_id": 6}]}
    jobs = call.parse(httpx.Response(200, json=page)).jobs
    assert (jobs[0].id, jobs[0].parent_id) == (7, 6)
    assert wasmq.Job.from_json({"id": 6, "module": "m", "state": "completed"}).parent_id is None
    with pytest.raises(TypeError, match="parent"):
        _core.list_jobs({"parents": 6}, None, None)
