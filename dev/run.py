#!/usr/bin/env python3
"""Bootstrap: nox and uv into a venv of their own, then nox runs a session of noxfile.py.

Needs only ``python3`` (3.10+) with ``venv``. The tools are pinned by ``constraints/tools.txt``
and installed with pip once into ``.nox/.tools`` (again when that file changes); pip's output
goes to ``.nox/.tools/install.log``.

    python3 dev/run.py test              # what CI runs: every `ci` session, three at a time
    python3 dev/run.py test -k hook -x   # what follows the session goes to pytest (a "--" first is fine)
    python3 dev/run.py demo              # the example DAG in real Airflow 3, against the emulator
    python3 dev/run.py tests-3 -k hook   # one session: tests-2, smoke-3.2, lint, docs, bench, lock 3.2, ...
    python3 dev/run.py --list            # a first argument with a dash: nox's own command line
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TOOLS = ROOT / ".nox" / ".tools"
PINS = ROOT / "constraints" / "tools.txt"
# Three sessions at a time on two cores: the two full suites wait on Airflow's processes much of
# the time, and the third slot takes the smoke lines, lint, docs and package in turn.
CI_SESSIONS = ["--parallel", "3", "--tags", "ci"]


def tools_python() -> Path:
    """The tools venv's Python, (re)installed when it is missing or its pins changed."""
    python = TOOLS / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    stamp, wanted = TOOLS / "pins.sha256", hashlib.sha256(PINS.read_bytes()).hexdigest()
    if python.exists() and stamp.exists() and stamp.read_text() == wanted:
        return python
    print(f"dev/run.py: installing nox and uv ({PINS.relative_to(ROOT)}) into {TOOLS.relative_to(ROOT)}", flush=True)
    pip = make_venv(python)
    log = TOOLS / "install.log"
    with log.open("w") as out:
        done = subprocess.run(
            [*pip, "install", "--disable-pip-version-check", "--no-input", "-r", PINS],
            stdout=out,
            stderr=subprocess.STDOUT,
            check=False,
        )
    if done.returncode != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-25:])
        sys.exit(f"dev/run.py: pip could not install the tools; the end of {log}:\n{tail}")
    stamp.write_text(wanted)
    return python


def make_venv(python: Path) -> list[str | Path]:
    """Create the tools venv; the pip command that installs into it.

    A Python without ensurepip (Debian's, without python3-venv) makes the venv without pip and
    lends it its own pip.
    """
    try:
        venv.create(TOOLS, with_pip=True, clear=True)
    except subprocess.CalledProcessError:
        venv.create(TOOLS, with_pip=False, clear=True)
        return [sys.executable, "-m", "pip", "--python", python]
    return [python, "-m", "pip"]


def nox_args(argv: list[str]) -> list[str]:
    """``SESSION [ARGS]`` as nox's ``-s SESSION -- ARGS`` (``test``: the CI sessions); ``-...`` as it is."""
    if not argv or argv[0].startswith("-"):
        return argv
    session, rest = argv[0], argv[1:]
    rest = rest[1:] if rest[:1] == ["--"] else rest
    return [*(CI_SESSIONS if session == "test" else ["--sessions", session]), "--", *rest]


def main() -> int:
    python = tools_python()
    os.chdir(ROOT)
    command = [str(python), "-m", "nox", "--noxfile", "noxfile.py", *nox_args(sys.argv[1:])]
    return subprocess.run(command, check=False).returncode


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
