"""The wasmq module name of a Django task."""

from __future__ import annotations

import hashlib
import re
from typing import Mapping

MODULE_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
_OTHER = re.compile(r"[^a-z0-9_-]")


def default_module_name(task_path: str) -> str:
    """`pages.tasks.reindex_page` → `pages-tasks-reindex_page`: lowercased, dots as
    dashes, any other character outside `[a-z0-9_-]` as `_`; a name past 63 characters
    keeps its first 54 and ends in `-` and 8 hex digits of the path's SHA-256."""
    name = _OTHER.sub("_", task_path.lower().replace(".", "-"))
    if not name[:1].isalnum():
        name = "t" + name
    if len(name) > 63:
        name = name[:54] + "-" + hashlib.sha256(task_path.encode()).hexdigest()[:8]
    return name


def module_name(task_path: str, modules: Mapping[str, str]) -> str:
    """The name `MODULES` gives the task, else its default name."""
    name = modules.get(task_path)
    if name is None:
        return default_module_name(task_path)
    if not MODULE_NAME.match(name):
        raise ValueError(
            f"OPTIONS['MODULES'][{task_path!r}] is {name!r}, not a wasmq module name "
            "(1–63 of a-z, 0-9, `_` and `-`, starting with a letter or digit)"
        )
    return name
