"""The task framework this process has: `django.tasks` (Django ≥ 6.0), else the
`django-tasks` backport. Their names differ in places; the rest of the package uses
these."""

from __future__ import annotations

try:
    from django.tasks import Task, TaskResult, TaskResultStatus, task_backends
    from django.tasks.backends.base import BaseTaskBackend
    from django.tasks.base import TaskError
    from django.tasks.exceptions import InvalidTask, TaskResultDoesNotExist
    from django.tasks.signals import task_enqueued, task_finished, task_started
    from django.utils.json import normalize_json

    FRAMEWORK = "django.tasks"
except ImportError:
    try:
        from django_tasks import TaskResult, TaskResultStatus, task_backends  # type: ignore[no-redef]
        from django_tasks.backends.base import BaseTaskBackend  # type: ignore[no-redef]
        from django_tasks.base import Task, TaskError  # type: ignore[no-redef]
        from django_tasks.exceptions import (  # type: ignore[no-redef]
            InvalidTaskError as InvalidTask,
            TaskResultDoesNotExist,
        )
        from django_tasks.signals import (  # type: ignore[no-redef]
            task_enqueued,
            task_finished,
            task_started,
        )
        from django_tasks.utils import normalize_json  # type: ignore[no-redef]

        FRAMEWORK = "django_tasks"
    except ImportError as e:
        raise ImportError(
            "wasmq.django needs django.tasks (Django 6.0 or newer) or the django-tasks "
            "backport (pip install django-tasks)"
        ) from e

__all__ = [
    "BaseTaskBackend", "FRAMEWORK", "InvalidTask", "Task", "TaskError", "TaskResult",
    "TaskResultDoesNotExist", "TaskResultStatus", "normalize_json", "task_backends",
    "task_enqueued", "task_finished", "task_started",
]
