"""Fixtures: Django set up on the example project, one real server per store with the
example's tasks pushed to it (built once per session), and clients for it."""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Iterator

import pytest

from servers import ROOT, Server, serve

EXAMPLE = ROOT / "examples" / "django"
_tmp = Path(tempfile.mkdtemp(prefix="wasmq-py-django-"))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pagesite.settings")
os.environ["PAGESITE_DB"] = str(_tmp / "pages.sqlite3")
sys.path.insert(0, str(EXAMPLE))

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402
from django.test.utils import override_settings  # noqa: E402

call_command("migrate", verbosity=0)

STORES = ["sqlite", "postgres"]
# Components and compiled modules are kept across runs here (both keyed by content).
CACHE = Path(os.environ.get("WASMQ_PY_CACHE", str(ROOT / "target" / "py-client-cache")))


def tasks_settings(server_url: str, key: str, **options: object) -> dict:
    """TASKS pointing the default backend at a server, as the example's settings do."""
    return {
        "default": {
            "BACKEND": "wasmq.django.WasmqBackend",
            "QUEUES": ["default", "mail"],
            "OPTIONS": {"URL": server_url, "KEY": key, **options},
        }
    }


@pytest.fixture(scope="session", params=STORES)
def server(request: pytest.FixtureRequest) -> Iterator[Server]:
    """A running server with the example's tasks pushed (by `manage.py wasmq_push`)."""
    if request.param == "postgres" and not os.environ.get("WASMQ_TEST_DATABASE_URL"):
        pytest.fail("set WASMQ_TEST_DATABASE_URL to a PostgreSQL the tests may create databases in")
    (CACHE / "artifacts").mkdir(parents=True, exist_ok=True)
    for s in serve(request.param, CACHE / "artifacts"):
        from io import StringIO

        out = StringIO()
        with override_settings(TASKS=tasks_settings(s.url, s.key)):
            call_command("wasmq_push", "--out", str(CACHE / "components"), stdout=out)
        s.push_output = out.getvalue()  # type: ignore[attr-defined]
        yield s


@pytest.fixture
def client(server: Server) -> Iterator["wasmq.Client"]:  # noqa: F821
    import wasmq

    with wasmq.Client(server.url, server.key) as c:
        yield c


def poll(check: Callable[[], bool], what: str, deadline: float = 60.0) -> None:
    """Polls `check` until it is true, failing with `what` after `deadline` seconds."""
    end = time.monotonic() + deadline
    while not check():
        if time.monotonic() > end:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.05)
