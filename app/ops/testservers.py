"""Throwaway local servers for the test suite (shipped like app/testing.py): a PostgreSQL cluster from Debian's
packages (initdb + pg_ctl in a temp dir, trust auth, a free localhost port) and Chroma's own `chroma run`.

Both are started once per test session and removed afterwards; nothing listens beyond 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

from app.core.errors import LocalServerError

PG_USER = "postgres"  # Debian's package creates this system user; initdb refuses to run as root


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def postgres_bin_dir() -> Path | None:
    """Where initdb and pg_ctl live: on PATH, else Debian's /usr/lib/postgresql/<version>/bin (newest)."""
    found = shutil.which("initdb")
    if found and shutil.which("pg_ctl"):
        return Path(found).resolve().parent
    versions = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parts[-3]) if p.parts[-3].isdigit() else 0
    )
    return versions[-1].parent if versions else None


def install_postgres() -> Path:
    """Debian's `postgresql` package (as root, apt-get update only when the first try fails); its bin dir."""
    if os.geteuid() != 0:
        raise LocalServerError("PostgreSQL is not installed and installing it needs root (apt-get install postgresql)")
    if not shutil.which("apt-get"):
        raise LocalServerError("PostgreSQL is not installed and this system has no apt-get")
    env = os.environ | {"DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-q", "postgresql"]
    if subprocess.run(install, env=env, capture_output=True, check=False).returncode != 0:
        subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True, check=False)
        done = subprocess.run(install, env=env, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise LocalServerError(f"apt-get install postgresql failed: {done.stderr.strip()[-300:]}")
    found = postgres_bin_dir()
    if found is None:
        raise LocalServerError("apt-get installed postgresql but no initdb was found")
    return found


def _as_pg_user(command: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return command
    try:
        import pwd

        pwd.getpwnam(PG_USER)
    except KeyError as exc:
        raise LocalServerError(f"running as root and there is no {PG_USER!r} user to run initdb as") from exc
    return ["runuser", "-u", PG_USER, "--", *command]


def _run(command: list[str], what: str, log: Path) -> None:
    done = subprocess.run(command, capture_output=True, text=True, check=False, timeout=120)
    if done.returncode != 0:
        tail = log.read_text(errors="replace")[-600:] if log.is_file() else ""
        raise LocalServerError(f"{what} failed ({done.returncode}): {(done.stderr or done.stdout).strip()}\n{tail}")


@contextlib.contextmanager
def local_postgres(*, install: bool = True) -> Iterator[str]:
    """A fresh cluster on a free port; yields the superuser URL of its `postgres` database. Stopped and deleted on
    exit. fsync is off: the data is thrown away anyway."""
    bin_dir = postgres_bin_dir() or (install_postgres() if install else None)
    if bin_dir is None:
        raise LocalServerError("PostgreSQL is not installed (Debian: apt-get install postgresql)")
    root = Path(tempfile.mkdtemp(prefix="labelgate-pg-"))  # /tmp itself: the postgres user must reach it
    data, log, port = root / "data", root / "server.log", free_port()
    if os.geteuid() == 0:
        shutil.chown(root, user=PG_USER)
    pg_ctl = [str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(log)]
    try:
        initdb = [str(bin_dir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres", "-E", "UTF8"]
        _run(_as_pg_user([*initdb, "--no-locale", "--no-sync"]), "initdb", log)
        options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off"
        _run(_as_pg_user([*pg_ctl, "-w", "-t", "60", "-o", options, "start"]), "pg_ctl start", log)
        try:
            yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
        finally:
            subprocess.run(_as_pg_user([*pg_ctl, "-m", "immediate", "-w", "stop"]), capture_output=True, check=False)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def create_database(admin_url: str) -> str:
    """A new empty database on the server of `admin_url` (a superuser URL); returns its URL."""
    import psycopg

    name = f"lg_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return admin_url.rsplit("/", 1)[0] + f"/{name}"


def drop_database(admin_url: str, url: str) -> None:
    """Drop a database made by create_database, closing whatever connections are still open on it."""
    import psycopg

    name = url.rsplit("/", 1)[1]
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def chroma_cli() -> Path:
    """The `chroma` command of the installed chromadb (next to this interpreter, else on PATH)."""
    beside = Path(sys.executable).parent / "chroma"
    found = beside if beside.is_file() else (Path(p) if (p := shutil.which("chroma")) else None)
    if found is None:
        raise LocalServerError("the `chroma` command of chromadb is not installed (pip install chromadb)")
    return found


def wait_for_heartbeat(url: str, process: subprocess.Popen[bytes], *, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise LocalServerError(f"`chroma run` exited with {process.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/api/v2/heartbeat", timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise LocalServerError(f"`chroma run` did not answer at {url} within {timeout:.0f} s")


@contextlib.contextmanager
def chroma_server(path: Path, *, timeout: float = 60.0) -> Iterator[str]:
    """`chroma run --path PATH --host 127.0.0.1 --port P` in the background; yields its URL, stops it on exit."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [str(chroma_cli()), "run", "--path", str(path), "--host", "127.0.0.1", "--port", str(port)]
    log = path.parent / f"chroma-{port}.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            command,
            stdout=sink,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=os.environ | {"ANONYMIZED_TELEMETRY": "False"},
        )
    try:
        wait_for_heartbeat(url, process, timeout=timeout)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
