"""`manage.py wasmq_push`: builds the project's Django tasks into wasmq components and
uploads each under its module name."""

from __future__ import annotations

import tempfile
from collections import defaultdict
from pathlib import Path
from typing import Any, Dict, List

from django.apps import apps
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils.module_loading import module_has_submodule

from wasmq.errors import WasmqError
from wasmq.django import build
from wasmq.django._compat import task_backends
from wasmq.django.backend import WasmqBackend


class Command(BaseCommand):
    help = (
        "Build the project's tasks (each app's `tasks` module, or the modules named) into "
        "wasmq components with the Python guest SDK, and upload them."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("modules", nargs="*", help="Python modules of tasks (default: every app's `tasks`)")
        parser.add_argument("--backend", default="default", help="the TASKS alias whose server and names to use")
        parser.add_argument("--out", type=Path, help="keep the built components in this directory")
        parser.add_argument("--build-only", action="store_true", help="build, do not upload")
        parser.add_argument("-p", "--path", type=Path, action="append", default=[],
                            help="another directory of pure-Python modules to bundle (repeatable)")

    def handle(self, *args: Any, **options: Any) -> None:
        backend = task_backends[options["backend"]]
        if not isinstance(backend, WasmqBackend):
            raise CommandError(f"TASKS[{options['backend']!r}] is {type(backend).__name__}, not wasmq.django.WasmqBackend")
        paths = options["modules"] or [
            f"{app.name}.tasks" for app in apps.get_app_configs() if module_has_submodule(app.module, "tasks")
        ]
        groups: Dict[str, List[build.Found]] = defaultdict(list)
        for task in build.discover(paths):
            if task.backend != backend.alias:
                continue
            groups[task.func.__module__].append(
                build.Found(task.module_path, backend.module_for(task), task.func.__module__, task.func.__name__)
            )
        if not groups:
            raise CommandError(f"no tasks of backend {backend.alias!r} in {', '.join(paths) or 'any app'}")
        out_dir = options["out"]
        with tempfile.TemporaryDirectory(prefix="wasmq-push-") as tmp:
            target = out_dir or Path(tmp)
            target.mkdir(parents=True, exist_ok=True)
            for python_module, found in sorted(groups.items()):
                self.stdout.write(f"building {python_module} ({len(found)} task{'s' if len(found) != 1 else ''})")
                try:
                    wasm = build.build_module(python_module, found, target, options["path"])
                except build.BuildFailed as e:
                    raise CommandError(f"{e} (a task may import only pure Python: no ORM, settings or native extensions)") from e
                if options["build_only"]:
                    self.stdout.write(f"  {wasm}")
                    continue
                data = wasm.read_bytes()
                for f in found:
                    try:
                        m = backend.client.push_module(f.module_name, data)
                    except WasmqError as e:
                        raise CommandError(f"uploading {f.path} as `{f.module_name}`: {e}") from e
                    state = "new" if m.created else "unchanged"
                    self.stdout.write(f"  {f.path} -> module {m.name} (version {m.version}, {state})")
