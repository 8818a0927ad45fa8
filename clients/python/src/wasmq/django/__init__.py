"""wasmq for Django: `WasmqBackend`, a `django.tasks` backend (or the `django-tasks`
backport's), and `manage.py wasmq_push` (add "wasmq.django" to INSTALLED_APPS).

    TASKS = {"default": {"BACKEND": "wasmq.django.WasmqBackend",
                         "QUEUES": ["default", "mail"],
                         "OPTIONS": {"URL": "http://127.0.0.1:8080", "KEY": "wq_…"}}}
"""

from __future__ import annotations

from typing import Any


def __getattr__(name: str) -> Any:
    # Imported on first use, so that listing the app in INSTALLED_APPS imports no task
    # framework before Django's settings are ready.
    if name == "WasmqBackend":
        from .backend import WasmqBackend

        return WasmqBackend
    raise AttributeError(name)


__all__ = ["WasmqBackend"]
