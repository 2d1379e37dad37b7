"""A throwaway PostgreSQL server for Airflow's metadata database, on 127.0.0.1 only.

Debian's server binaries are used (installed with apt-get when missing and we are root, as on
CI). PostgreSQL refuses to run as root, so as root the server runs as the ``postgres`` system
user, with its data directory in a temporary directory that user owns.
"""

from __future__ import annotations

import contextlib
import fcntl
import glob
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from tests.system.processes import free_port, tail

SERVER_USER = "postgres"
START_TIMEOUT_SECONDS = 60
INSTALL_LOCK = Path(tempfile.gettempdir()) / "census-provider-postgres-install.lock"
# Durability is worthless for a database that is deleted after the test; speed is not.
SERVER_SETTINGS: dict[str, object] = {
    "listen_addresses": "127.0.0.1",
    "unix_socket_directories": "",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "300",
}


def server_bin_dir() -> Path:
    """Where ``initdb`` and ``pg_ctl`` live, installing Debian's postgresql first if needed."""
    found = _installed_bin_dir()
    if found is None and os.geteuid() == 0:
        found = _install_server()
    if found is None:
        raise RuntimeError(
            "PostgreSQL server binaries not found in /usr/lib/postgresql/*/bin; "
            "install Debian's `postgresql` package (the tests do it themselves when run as root)"
        )
    return found


def _install_server() -> Path | None:
    """apt-get install postgresql, one test process at a time: both Airflow lines' suites may get
    here at once, and dpkg allows one install."""
    with open(INSTALL_LOCK, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        found = _installed_bin_dir()
        if found is not None:
            return found
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        for command in (
            ["apt-get", "update"],
            ["apt-get", "install", "-y", "-o", "DPkg::Lock::Timeout=300", "postgresql"],
        ):
            done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                raise RuntimeError(f"`{' '.join(command)}` failed ({done.returncode}):\n{done.stderr[-3000:]}")
        return _installed_bin_dir()


def _installed_bin_dir() -> Path | None:
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=lambda p: int(p.split("/")[4]))
    return Path(candidates[-1]).parent if candidates else None


class PostgresServer:
    """Start with :meth:`start`, make databases with :meth:`create_database`, end with :meth:`stop`."""

    def __init__(self) -> None:
        self.bin_dir = server_bin_dir()
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="census-postgres-"))
        self.data_dir = self.root / "data"
        self.log_path = self.root / "server.log"
        self._as_root = os.geteuid() == 0
        if self._as_root:
            shutil.chown(self.root, user=SERVER_USER)

    def _as_server_user(self, *command: str | Path) -> list[str]:
        prefix = ["runuser", "-u", SERVER_USER, "--"] if self._as_root else []
        return [*prefix, *(str(part) for part in command)]

    def start(self) -> PostgresServer:
        """initdb with trust auth for ``postgres``, then start listening on 127.0.0.1 only."""
        self._run(self.bin_dir / "initdb", "-D", self.data_dir, "-U", "postgres", "-A", "trust", "--no-sync")
        # pg_ctl hands these to the server through a shell, hence the quotes around each value.
        options = " ".join(f"-c {key}='{value}'" for key, value in {**SERVER_SETTINGS, "port": self.port}.items())
        self._run(
            self.bin_dir / "pg_ctl",
            "start",
            "-D",
            self.data_dir,
            "-l",
            self.log_path,
            "-w",
            "-t",
            str(START_TIMEOUT_SECONDS),
            "-o",
            options,
        )
        return self

    def _run(self, *command: str | Path) -> None:
        done = subprocess.run(self._as_server_user(*command), capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise RuntimeError(
                f"{Path(str(command[0])).name} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}\n"
                f"{tail(self.log_path)}"
            )

    def url(self, database: str) -> str:
        """The SQLAlchemy URL of a database on this server (psycopg2 driver)."""
        return f"postgresql+psycopg2://postgres@127.0.0.1:{self.port}/{database}"

    def connect(self, database: str = "postgres"):  # type: ignore[no-untyped-def]
        """An autocommit psycopg2 connection, so every query sees the latest committed state."""
        import psycopg2

        connection = psycopg2.connect(host="127.0.0.1", port=self.port, user="postgres", dbname=database)
        connection.autocommit = True
        return connection

    def create_database(self, name: str, template: str | None = None) -> None:
        """A new database, copied from ``template`` when given (much faster than migrating again)."""
        suffix = f" TEMPLATE {template}" if template else ""
        with contextlib.closing(self.connect()) as connection, connection.cursor() as cursor:
            cursor.execute(f"CREATE DATABASE {name}{suffix}")

    def stop(self) -> None:
        """Stop at once (nothing here is worth a clean shutdown) and delete the data."""
        if self.data_dir.exists():
            subprocess.run(
                self._as_server_user(self.bin_dir / "pg_ctl", "stop", "-D", self.data_dir, "-m", "immediate", "-w"),
                capture_output=True,
                check=False,
            )
        shutil.rmtree(self.root, ignore_errors=True)
