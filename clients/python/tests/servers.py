"""Real `wasmq serve` processes for the tests, on the embedded SQLite store or on a
fresh PostgreSQL database, and a loopback port nobody listens on."""

from __future__ import annotations

import os
import socket
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, List, Optional
from urllib.parse import urlsplit, urlunsplit

import httpx

ROOT = Path(__file__).resolve().parents[3]
START_DEADLINE = 60.0


def wasmq_bin() -> str:
    path = os.environ.get("WASMQ_BIN") or str(ROOT / "target" / "debug" / "wasmq")
    if not os.access(path, os.X_OK):
        raise RuntimeError(f"no wasmq binary at {path}: build it (cargo build -p wasmq-host) or set WASMQ_BIN")
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env() -> dict:
    # The server's flags say everything; an inherited WASMQ_* variable must not.
    return {k: v for k, v in os.environ.items() if not k.startswith("WASMQ_")}


@dataclass
class Server:
    """A running server: its URL, an admin key, and the process."""

    store: str
    url: str
    key: str
    process: subprocess.Popen
    log_path: Path

    def log_tail(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]


def _wait_ready(proc: subprocess.Popen, url: str, log: Path) -> None:
    deadline = time.monotonic() + START_DEADLINE
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"wasmq serve exited with {proc.returncode}:\n{log.read_text()[-4000:]}")
        try:
            if httpx.get(f"{url}/readyz", timeout=1.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"wasmq serve not ready after {START_DEADLINE} s:\n{log.read_text()[-4000:]}")


def _pg_admin_url() -> Optional[str]:
    return os.environ.get("WASMQ_TEST_DATABASE_URL")


def _with_db(url: str, db: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + db, parts.query, parts.fragment))


def serve(store: str, artifacts: Path) -> Iterator[Server]:
    """Starts a server on `store` ("sqlite" or "postgres"), yields it, stops it and
    removes what it made (the data directory, the database)."""
    exe = wasmq_bin()
    with tempfile.TemporaryDirectory(prefix=f"wasmq-py-{store}-") as tmp:
        store_args: List[str]
        db = None
        admin = _pg_admin_url()
        if store == "postgres":
            import psycopg

            assert admin, "WASMQ_TEST_DATABASE_URL is not set"
            db = f"wasmq_py_{uuid.uuid4().hex[:12]}"
            with psycopg.connect(admin, autocommit=True) as conn:
                conn.execute(f'CREATE DATABASE "{db}"')
            store_args = ["--database-url", _with_db(admin, db)]
        else:
            store_args = ["--data-dir", tmp]
        try:
            key = subprocess.run(
                [exe, "key", "create", *store_args], env=_env(), check=True, capture_output=True, text=True
            ).stdout.strip()
            port = free_port()
            url = f"http://127.0.0.1:{port}"
            log = Path(tmp) / "serve.log"
            with open(log, "wb") as out:
                proc = subprocess.Popen(
                    [exe, "serve", "--listen", f"127.0.0.1:{port}", "--artifact-dir", str(artifacts),
                     "--queue", "default=4", "--queue", "mail=2", *store_args],
                    env=_env(), stdout=out, stderr=subprocess.STDOUT,
                )
            try:
                _wait_ready(proc, url, log)
                yield Server(store, url, key, proc, log)
            finally:
                proc.terminate()
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        finally:
            if db is not None and admin:
                import psycopg

                with psycopg.connect(admin, autocommit=True) as conn:
                    conn.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
