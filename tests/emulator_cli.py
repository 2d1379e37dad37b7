"""The emulator's command line, ``python -m airflow_provider_census.testing``, as the tests start it."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

REPOSITORY = Path(__file__).resolve().parents[1]
COMMAND = (sys.executable, "-m", "airflow_provider_census.testing", "--port", "0")
"""The command line on a free port; a test adds its flags."""


def serve(*flags: str) -> subprocess.Popen[str]:
    """The emulator, serving until :func:`stop`; its first lines on stdout are its base URL and its token."""
    return subprocess.Popen(
        [*COMMAND, *flags], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPOSITORY
    )


def stop(process: subprocess.Popen[str]) -> str:
    """Stop the emulator (SIGTERM, as a user's Ctrl-C or a supervisor does); what it printed on stderr."""
    process.terminate()
    _, stderr = process.communicate(timeout=10)
    assert process.returncode == 0
    return stderr


def refusal(*flags: str) -> subprocess.CompletedProcess[str]:
    """The command line run with flags it must refuse: it exits at once, saying why on stderr."""
    return subprocess.run([*COMMAND, *flags], check=False, capture_output=True, text=True, timeout=30, cwd=REPOSITORY)


@dataclass
class Controlled:
    """An emulator started with ``--control``: one JSON command a line on its stdin, one JSON answer a line."""

    base_url: str
    token: str
    stdin: IO[str]
    stdout: IO[str]

    def command(self, call: dict[str, object]) -> dict[str, Any]:
        self.stdin.write(json.dumps(call) + "\n")
        self.stdin.flush()
        return dict(json.loads(self.stdout.readline()))


@contextmanager
def controlled(*flags: str) -> Iterator[Controlled]:
    """The emulator with its control channel, after its base URL and token lines (nothing else precedes the
    answers); on leaving, its stdin is closed, and it must stop on its own, cleanly."""
    process = subprocess.Popen(
        [*COMMAND, *flags, "--control"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=REPOSITORY
    )
    assert process.stdin is not None and process.stdout is not None
    try:
        base_url = process.stdout.readline().strip()
        token = process.stdout.readline().strip().removeprefix("token: ")
        yield Controlled(base_url, token, process.stdin, process.stdout)
    finally:
        process.stdin.close()  # the emulator stops when its commands end
        assert process.wait(timeout=10) == 0
