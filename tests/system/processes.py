"""Long-running subprocesses for system tests: started in their own process group, logged to a
file, killed with every descendant, and waited on with bounded, self-explaining waits."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TypeVar

import psutil

T = TypeVar("T")

TAIL_LINES = 40
STOP_GRACE_SECONDS = 3.0


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def tail(path: Path, lines: int = TAIL_LINES) -> str:
    """The last ``lines`` lines of a log file, or a note that it does not exist yet."""
    if not path.exists():
        return f"({path} does not exist)"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


class Component:
    """One long-running command (``airflow scheduler``, say), its log file and its process tree.

    The command gets a session of its own, so a signal to its process group reaches the
    processes it forks; descendants that start their own session are found through psutil.
    """

    def __init__(self, name: str, command: Sequence[str], *, env: dict[str, str], cwd: Path, log_dir: Path) -> None:
        self.name = name
        self.command = list(command)
        self.log_path = log_dir / f"{name}.log"
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                self.command,
                env=env,
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    @property
    def exited(self) -> bool:
        return self.process.poll() is not None

    def describe(self) -> str:
        """The component's name, state and log tail, for failure messages."""
        state = f"exited with {self.process.returncode}" if self.exited else f"running as pid {self.process.pid}"
        return f"----- {self.name} ({state}) {self.log_path} -----\n{tail(self.log_path)}"

    def _tree(self) -> list[psutil.Process]:
        """The process and all its descendants that are still alive."""
        try:
            root = psutil.Process(self.process.pid)
            return [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def connected_to(self, port: int) -> bool:
        """Whether any process of the tree has an open TCP connection to ``port`` on 127.0.0.1."""
        for process in self._tree():
            with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
                for connection in process.net_connections(kind="tcp"):
                    if connection.raddr and connection.raddr.ip == "127.0.0.1" and connection.raddr.port == port:
                        return True
        return False

    def kill(self) -> None:
        """SIGKILL the whole tree at once, as a machine crash would: nothing gets to clean up."""
        tree = self._tree()
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)
        _signal_all(tree, signal.SIGKILL)
        self.process.wait(timeout=STOP_GRACE_SECONDS)

    def stop(self) -> None:
        """SIGTERM the tree, give it a grace period, then SIGKILL whatever is left."""
        tree = self._tree()
        if not tree:
            self.process.wait()
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGTERM)
        _signal_all(tree, signal.SIGTERM)
        _signal_all(_wait_gone(tree, STOP_GRACE_SECONDS), signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=STOP_GRACE_SECONDS)


def _wait_gone(processes: Iterable[psutil.Process], timeout: float) -> list[psutil.Process]:
    """Wait for processes to end; those still alive after ``timeout``. A zombie counts as ended:
    it is dead, only not yet reaped by its parent (which may be dying too)."""
    alive = list(processes)
    deadline = time.monotonic() + timeout
    while alive and time.monotonic() < deadline:
        time.sleep(0.1)
        alive = [process for process in alive if _is_alive(process)]
    return alive


def _is_alive(process: psutil.Process) -> bool:
    try:
        return process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _signal_all(processes: Iterable[psutil.Process], signum: int) -> None:
    for process in processes:
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
            process.send_signal(signum)


def wait_until(
    check: Callable[[], T | None],
    *,
    timeout: float,
    what: str,
    explain: Callable[[], str],
    interval: float = 0.25,
    watch: Sequence[Component] = (),
) -> T:
    """Call ``check`` until it returns something other than None or False, and return that.

    Fails after ``timeout`` seconds, or at once when a watched component exits, with ``what``
    was awaited and ``explain()`` (component log tails and the state seen) in the message.
    """
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result is not None and result is not False:
            return result
        dead = [component.name for component in watch if component.exited]
        if dead:
            raise AssertionError(f"{', '.join(dead)} exited while waiting for {what}\n{explain()}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}\n{explain()}")
        time.sleep(interval)
