"""`wasmq-task build FILE.py -o OUT.wasm [--http] [--config] [-p DIR]...`: a Python task as
a wasmq component.

`--http` adds `cx.http` (imports wasi:http/outgoing-handler), `--config` adds `cx.config`
(imports wasi:config/store): a component carries every import of its world, and one that
imports wasi:http needs an allow-list and loses the run-ahead fast path, so a task gets
them only when asked. The worlds are in `wit/worlds.wit`, the WASI packages in `wit/deps`.

Runs componentize-py (the pinned version this package depends on) against the WIT that
ships inside this package, with an entry module that imports FILE.py (whose `@task`
registers the handler) and exports the WIT `run`. Pure-Python modules found on FILE's
directory and each `-p DIR` are bundled. Nothing is downloaded.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

WIT_DIR = Path(__file__).parent / "wit"
SDK_DIR = Path(__file__).resolve().parent.parent

ENTRY = """\
import wit_world
import wasmq_task
import wasmq_task._guest

wasmq_task.preload()
import {module}  # its @task registers the handler


class WitWorld(wit_world.WitWorld):
    def run(self, input: bytes) -> None:
        wasmq_task._guest.run(input)
"""


def componentize_py() -> str:
    """The componentize-py executable beside this interpreter, else on PATH."""
    beside = Path(sys.executable).parent / "componentize-py"
    if beside.exists():
        return str(beside)
    found = shutil.which("componentize-py")
    if found is None:
        raise SystemExit(
            "wasmq-task: componentize-py is not installed; `pip install wasmq-task` installs it"
        )
    return found


def world(http: bool, config: bool) -> str:
    """The WIT world a task with these options is built against."""
    return "task" + ("-http" if http else "") + ("-config" if config else "")


def build(
    source: Path, output: Path, paths: list[Path], http: bool = False, config: bool = False
) -> int:
    """Builds `source` into the component `output` and returns its size in bytes."""
    if source.suffix != ".py" or not source.is_file():
        raise SystemExit(f"wasmq-task: {source} is not a Python file")
    module = source.stem
    if not module.isidentifier():
        raise SystemExit(f"wasmq-task: {source.name} is not importable (rename it, e.g. my_task.py)")
    with tempfile.TemporaryDirectory(prefix="wasmq-task-") as tmp:
        entry = Path(tmp) / "wasmq_entry.py"
        entry.write_text(ENTRY.format(module=module))
        cmd = [componentize_py(), "-d", str(WIT_DIR), "-w", world(http, config), "componentize"]
        for p in [Path(tmp), source.resolve().parent, SDK_DIR, *paths]:
            cmd += ["-p", str(p)]
        cmd += ["wasmq_entry", "-o", str(output)]
        done = subprocess.run(cmd)
        if done.returncode != 0:
            raise SystemExit(f"wasmq-task: componentize-py failed (exit {done.returncode})")
    stamp_language(output)
    return output.stat().st_size


def _leb128(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def stamp_language(component: Path) -> None:
    """Appends the custom section `wasmq-task-language` = `python`: the server then gives
    the module an interpreter's default fuel (componentize-py records no name of its own)."""
    name = b"wasmq-task-language"
    body = _leb128(len(name)) + name + b"python"
    with component.open("ab") as f:
        f.write(b"\x00" + _leb128(len(body)) + body)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="wasmq-task", description="a Python task as a wasmq component")
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="build a Python task into a wasmq component")
    b.add_argument("source", type=Path, help="the task's file, with one @task")
    b.add_argument("-o", "--output", type=Path, required=True, help="the component to write")
    b.add_argument("-p", "--path", type=Path, action="append", default=[],
                   help="another directory of Python modules to bundle (repeatable)")
    b.add_argument("--http", action="store_true",
                   help="outbound HTTP: `cx.http` (the module then needs an allow-list)")
    b.add_argument("--config", action="store_true",
                   help="the module's config and secrets: `cx.config(name)`")
    args = parser.parse_args(argv)
    size = build(args.source, args.output, args.path, args.http, args.config)
    print(f"{args.output}: {size:,} bytes ({size / (1 << 20):.1f} MiB)")


if __name__ == "__main__":
    main()
