"""Stand-in for the `django-tasks` backport inside a wasmq component: the same names as
the `django.tasks` stand-in."""

from django.tasks import *  # noqa: F401,F403
from django.tasks import Task, TaskContext, TaskResult, TaskResultStatus, task  # noqa: F401
