"""The same tasks run natively: under Django's ImmediateBackend (run at enqueue) and
DummyBackend (stored, not run), with no wasmq server. `python manage.py test pages`."""

import asyncio

import django
from django.test import TestCase, override_settings

from .models import Page
from .tasks import notify_subscribers, reindex_page, send_digest, summarize

if django.VERSION >= (6, 0):
    from django.tasks import TaskResultStatus, task_backends

    BACKENDS = "django.tasks.backends"
else:
    from django_tasks import TaskResultStatus, task_backends

    BACKENDS = "django_tasks.backends"

QUEUES = ["default", "mail"]
IMMEDIATE = {"default": {"BACKEND": f"{BACKENDS}.immediate.ImmediateBackend", "QUEUES": QUEUES}}
DUMMY = {"default": {"BACKEND": f"{BACKENDS}.dummy.DummyBackend", "QUEUES": QUEUES}}


@override_settings(TASKS=IMMEDIATE)
class ImmediateTests(TestCase):
    def test_saving_a_page_reindexes_it_and_notifies(self):
        page = Page.objects.create(title="Tide tables", body="The tide rises. The tide falls.",
                                   subscribers="b@example.com\na@example.com")
        reindex, notify = page.task_results
        self.assertEqual(reindex.status, TaskResultStatus.SUCCESSFUL)
        self.assertEqual(reindex.return_value["terms"]["tide"], 5)
        self.assertEqual(notify.return_value["to"], ["a@example.com", "b@example.com"])
        self.assertEqual(notify.return_value["subject"], "New page: Tide tables")

    def test_a_page_without_title_fails_its_reindex(self):
        result = reindex_page.enqueue(7, " ", "body")
        self.assertEqual(result.status, TaskResultStatus.FAILED)
        self.assertIs(result.errors[0].exception_class, ValueError)
        self.assertIn("page 7 has no title", result.errors[0].traceback)

    def test_a_task_that_takes_context_sees_its_attempt(self):
        result = send_digest.enqueue(["A", "B"])
        self.assertEqual(result.return_value["subject"], "2 new pages")
        self.assertEqual((result.return_value["attempt"], result.return_value["result_id"]), (1, result.id))

    def test_the_async_task_runs(self):
        result = asyncio.run(summarize.aenqueue("One. Two. Three.", sentences=2))
        self.assertEqual(result.return_value, "One. Two.")


@override_settings(TASKS=DUMMY)
class DummyTests(TestCase):
    def test_saving_a_page_enqueues_without_running(self):
        page = Page.objects.create(title="Draft", body="", subscribers="x@example.com")
        self.assertEqual([r.status for r in page.task_results], [TaskResultStatus.READY] * 2)
        stored = task_backends["default"].results
        self.assertEqual([r.task.name for r in stored], ["reindex_page", "notify_subscribers"])
        self.assertEqual(stored[1].task.queue_name, "mail")
        self.assertEqual(stored[0].args, [page.pk, "Draft", ""])

    def test_a_direct_call_is_plain_python(self):
        self.assertEqual(notify_subscribers.call(1, "T", ["z@x", "z@x"])["to"], ["z@x"])
