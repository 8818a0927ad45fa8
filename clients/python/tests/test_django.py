"""Real Django (the example project) with `wasmq.django.WasmqBackend` against a real
server on both stores: the tasks run in the sandbox as built by `manage.py wasmq_push`."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from datetime import timedelta

import pytest
from django.db import transaction
from django.test.utils import override_settings
from django.utils import timezone

import wasmq
from conftest import EXAMPLE, poll, tasks_settings
from pages.models import Page
from pages.tasks import notify_subscribers, reindex_page, send_digest, summarize
from servers import free_port
from wasmq import errors
from wasmq.django._compat import (
    FRAMEWORK,
    TaskResultDoesNotExist,
    TaskResultStatus,
    task_enqueued,
    task_finished,
)
from wasmq.django.naming import default_module_name, module_name


@pytest.fixture
def backend(server):
    """The default backend pointed at `server` for one test."""
    with override_settings(TASKS=tasks_settings(server.url, server.key)):
        from wasmq.django._compat import task_backends

        yield task_backends["default"]


def finish(result, deadline: float = 60.0):
    """Refreshes `result` until it is finished."""
    def done() -> bool:
        result.refresh()
        return result.is_finished

    poll(done, f"task result {result.id}", deadline)
    return result


def test_the_framework_is_the_one_expected() -> None:
    import django

    assert FRAMEWORK == ("django.tasks" if django.VERSION >= (6, 0) else "django_tasks")


def test_push_built_and_uploaded_every_task(server) -> None:
    for name in ("pages-tasks-reindex_page", "pages-tasks-notify_subscribers", "pages-tasks-summarize",
                 "pages-tasks-send_digest"):
        assert f"-> module {name} (version 1," in server.push_output


def test_enqueue_runs_the_task_in_the_sandbox(backend) -> None:
    result = reindex_page.enqueue(1, "Tide tables", body="The tide rises. The tide falls.")
    assert result.id.isdigit() and result.status in (TaskResultStatus.READY, TaskResultStatus.RUNNING,
                                                     TaskResultStatus.SUCCESSFUL)
    finish(result)
    assert result.status == TaskResultStatus.SUCCESSFUL
    # The sandbox computed what the plain function computes.
    assert result.return_value == reindex_page.call(1, "Tide tables", body="The tide rises. The tide falls.")
    assert result.enqueued_at is not None and result.started_at <= result.finished_at
    assert result.attempts == 1 and result.errors == []
    again = reindex_page.get_result(result.id)
    assert again.return_value == result.return_value and again.kwargs == {"body": "The tide rises. The tide falls."}
    job = backend.client.get(int(result.id))
    assert job.input == {"args": [1, "Tide tables"], "kwargs": {"body": "The tide rises. The tide falls."},
                         "task": "pages.tasks.reindex_page"}


def test_a_failing_task_reports_its_exception_and_traceback(backend) -> None:
    result = finish(reindex_page.enqueue(2, "", ""))
    assert result.status == TaskResultStatus.FAILED
    [error] = result.errors
    assert error.exception_class is ValueError
    assert error.traceback.startswith("Traceback (most recent call last):")
    assert "in reindex_page" in error.traceback and "page 2 has no title" in error.traceback
    with pytest.raises(ValueError):
        result.return_value


def test_priority_queue_and_run_after_become_the_jobs_fields(backend) -> None:
    later = timezone.now() + timedelta(hours=1)
    scheduled = reindex_page.using(priority=-7, run_after=later).enqueue(3, "Later", "")
    job = backend.client.get(int(scheduled.id))
    assert (job.priority, job.queue, job.state) == (-7, "default", "scheduled")
    assert abs((job.run_at - later).total_seconds()) < 0.001
    assert scheduled.status == TaskResultStatus.READY
    backend.client.cancel(job.id)
    mail = notify_subscribers.enqueue(3, "Later", ["a@example.com"])
    job = backend.client.get(int(mail.id))
    assert (job.queue, job.priority) == ("mail", 10)


def test_run_after_in_the_near_future_runs_then(backend) -> None:
    when = timezone.now() + timedelta(seconds=1)
    result = reindex_page.using(run_after=when).enqueue(4, "Soon", "soon")
    run_at = backend.client.get(int(result.id)).run_at
    assert abs((run_at - when).total_seconds()) < 0.001
    finish(result)
    assert result.status == TaskResultStatus.SUCCESSFUL
    assert result.started_at >= run_at


def test_an_unknown_module_fails_at_enqueue_and_stores_nothing(server) -> None:
    fired = []

    def on_enqueued(sender, task_result, **kwargs):
        fired.append(task_result)

    options = {"MODULES": {"pages.tasks.reindex_page": "not-pushed"}}
    task_enqueued.connect(on_enqueued)
    try:
        with override_settings(TASKS=tasks_settings(server.url, server.key, **options)):
            with pytest.raises(errors.ModuleNotFound) as e:
                reindex_page.enqueue(5, "Lost", "")
    finally:
        task_enqueued.disconnect(on_enqueued)
    assert "`not-pushed`" in e.value.detail and "manage.py wasmq_push" in e.value.detail
    assert fired == []
    with wasmq.Client(server.url, server.key) as c:
        assert list(c.jobs(module="not-pushed")) == []


def test_a_server_that_is_down_raises_and_enqueues_nothing() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with override_settings(TASKS=tasks_settings(url, "k", RETRIES=0)):
        with pytest.raises(errors.ConnectionFailed) as e:
            reindex_page.enqueue(6, "Down", "")
        assert url in str(e.value)
        # Deferred to commit: the commit raises, it does not pass unseen.
        with override_settings(TASKS=tasks_settings(url, "k", RETRIES=0, ENQUEUE_ON_COMMIT=True)):
            with pytest.raises(errors.ConnectionFailed):
                with transaction.atomic():
                    Page.objects.create(title="Down", body="")


def _count(client: wasmq.Client, module: str) -> int:
    return sum(1 for _ in client.jobs(module=module))


def test_enqueue_on_commit_waits_for_the_commit(server) -> None:
    module = "pages-tasks-reindex_page"
    with override_settings(TASKS=tasks_settings(server.url, server.key, ENQUEUE_ON_COMMIT=True)), \
            wasmq.Client(server.url, server.key) as c:
        before = _count(c, module)
        with transaction.atomic():
            page = Page.objects.create(title="Committed", body="kept", subscribers="a@example.com")
            [reindex, notify] = page.task_results
            assert reindex.id.startswith("pending-")
            assert _count(c, module) == before
        assert reindex.id.isdigit() and notify.id.isdigit()
        assert _count(c, module) == before + 1
        finish(reindex)
        finish(notify)
        assert reindex.return_value["terms"] == {"committed": 3, "kept": 1}
        assert notify.return_value["subject"] == "New page: Committed"

        with pytest.raises(RuntimeError):
            with transaction.atomic():
                Page.objects.create(title="Rolled back", body="")
                raise RuntimeError("roll back")
        assert _count(c, module) == before + 1
        assert not Page.objects.filter(title="Rolled back").exists()


def test_signals_fire_once_each(backend) -> None:
    seen = []

    def on_enqueued(sender, task_result, **kwargs):
        seen.append(("enqueued", task_result.id, task_result.status))

    def on_finished(sender, task_result, **kwargs):
        seen.append(("finished", task_result.id, task_result.status))

    task_enqueued.connect(on_enqueued)
    task_finished.connect(on_finished)
    try:
        result = finish(reindex_page.enqueue(7, "Signals", "ping"))
        result.refresh()
        reindex_page.get_result(result.id)
    finally:
        task_enqueued.disconnect(on_enqueued)
        task_finished.disconnect(on_finished)
    mine = [s for s in seen if s[1] == result.id]
    assert [s[0] for s in mine] == ["enqueued", "finished"]
    assert mine[1][2] == TaskResultStatus.SUCCESSFUL


def test_a_task_that_takes_context_gets_its_job_in_the_sandbox(backend) -> None:
    result = finish(send_digest.enqueue(["Tides", "Moons"]))
    assert result.status == TaskResultStatus.SUCCESSFUL, result.errors
    assert result.return_value == {"subject": "2 new pages", "body": "- Tides\n- Moons",
                                   "result_id": result.id, "attempt": 1}


def test_get_result_of_an_unknown_id(backend) -> None:
    for rid in ("987654321", "not-a-number"):
        with pytest.raises(TaskResultDoesNotExist):
            reindex_page.get_result(rid)


def test_a_job_naming_a_module_outside_the_apps_is_not_imported(backend) -> None:
    # `this` prints the Zen of Python when imported: a job's input must not make us.
    assert "this" not in sys.modules
    job = backend.client.enqueue("pages-tasks-reindex_page", {"args": [1, "x", ""], "kwargs": {}, "task": "this.run"})
    with pytest.raises(TaskResultDoesNotExist, match="no task of this project's apps"):
        backend.get_result(str(job.id))
    assert "this" not in sys.modules


def test_async_enqueue_and_result(backend) -> None:
    async def main():
        result = await summarize.aenqueue("First. Second. Third.", sentences=2)
        for _ in range(600):
            await result.arefresh()
            if result.is_finished:
                return result
            await asyncio.sleep(0.1)
        pytest.fail("the async task did not finish")

    result = asyncio.run(main())
    assert result.status == TaskResultStatus.SUCCESSFUL, result.errors
    assert result.return_value == "First. Second."


def test_the_example_project_tests_pass_natively(tmp_path) -> None:
    env = {**os.environ, "PAGESITE_DB": str(tmp_path / "native.sqlite3"), "PYTHONDONTWRITEBYTECODE": "1"}
    done = subprocess.run([sys.executable, "manage.py", "test", "pages", "-v", "2"], cwd=EXAMPLE, env=env,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-4000:]
    assert "Ran 6 tests" in done.stderr


def test_a_backend_without_a_key_is_flagged_by_check(monkeypatch) -> None:
    from django.core import checks

    monkeypatch.delenv("WASMQ_KEY", raising=False)
    with override_settings(TASKS=tasks_settings("http://127.0.0.1:9", None)):
        assert [m.id for m in checks.run_checks() if m.id.startswith("wasmq.")] == ["wasmq.W001"]
    with override_settings(TASKS=tasks_settings("http://127.0.0.1:9", "wq_x")):
        assert [m.id for m in checks.run_checks() if m.id.startswith("wasmq.")] == []


def test_module_names() -> None:
    assert default_module_name("pages.tasks.reindex_page") == "pages-tasks-reindex_page"
    assert default_module_name("My.Tasks.Ünïcode") == "my-tasks-_n_code"
    long = default_module_name("a" * 40 + ".tasks." + "b" * 40)
    assert len(long) == 63 and long[:54] == ("a" * 40 + "-tasks-" + "b" * 40)[:54]
    assert module_name("x.y", {"x.y": "custom"}) == "custom"
    with pytest.raises(ValueError, match="not a wasmq module name"):
        module_name("x.y", {"x.y": "Bad Name"})


def test_a_task_module_that_imports_the_orm_is_refused_at_push(tmp_path, monkeypatch) -> None:
    from django.core.management import call_command
    from django.core.management.base import CommandError

    pkg = tmp_path / "ormtasks"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "tasks.py").write_text(
        "try:\n    from django.tasks import task\nexcept ImportError:\n    from django_tasks import task\n"
        "from django.db import models  # not in the sandbox\n\n"
        "@task\ndef count(n):\n    return n\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    with override_settings(TASKS=tasks_settings("http://127.0.0.1:9", "k")):
        with pytest.raises(CommandError) as e:
            call_command("wasmq_push", "ormtasks.tasks", "--build-only", "--out", str(tmp_path / "out"))
    assert "building the tasks of ormtasks.tasks failed" in str(e.value)
    assert "no ORM" in str(e.value)
