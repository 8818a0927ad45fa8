"""Settings of the example project: pages whose save enqueues tasks through wasmq.

The wasmq server and key come from `WASMQ_URL` and `WASMQ_KEY`; the database file from
`PAGESITE_DB` (default `db.sqlite3` beside manage.py).
"""

import os
from pathlib import Path

import django

BASE_DIR = Path(__file__).resolve().parent.parent
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "example-only-not-secret")
DEBUG = True
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
USE_TZ = True
TIME_ZONE = "UTC"
ROOT_URLCONF = "pagesite.urls"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "wasmq.django",  # manage.py wasmq_push
    "pages",
]
if django.VERSION < (6, 0):
    INSTALLED_APPS.insert(1, "django_tasks")  # the backport, before django.tasks existed

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("PAGESITE_DB", str(BASE_DIR / "db.sqlite3")),
    }
}

TASKS = {
    "default": {
        "BACKEND": "wasmq.django.WasmqBackend",
        "QUEUES": ["default", "mail"],
        "OPTIONS": {
            "URL": os.environ.get("WASMQ_URL", "http://127.0.0.1:8080"),
            "KEY": os.environ.get("WASMQ_KEY"),
            # A task not named here runs as the module its path gives:
            # pages.tasks.reindex_page → `pages-tasks-reindex_page`.
            "MODULES": {},
            # Send jobs when the transaction that made them commits, not before.
            "ENQUEUE_ON_COMMIT": True,
        },
    }
}
