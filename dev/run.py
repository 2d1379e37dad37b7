#!/usr/bin/env python3
"""One entry point for developers and CI: install, lint, test, demo and relock.

Runs with the system ``python3`` and needs only the standard library. Every Airflow line gets
its own virtualenv under ``.venvs/`` pinned by ``constraints/airflow-<line>.txt``: the full
lines 3 (3.3) and 2 (2.11) run ruff, mypy and every test; the smoke lines 3.2, 3.1 and 3.0
run only ``pytest -m smoke``; ``test`` also builds the docs site with warnings as errors, in a lane
of its own (``.venvs/docs``, pinned by ``constraints/docs.txt``):

    python3 dev/run.py test                 # every line: ruff, mypy, pytest; pytest -m smoke
    python3 dev/run.py test --airflow 3     # one line only (3, 2, 3.2, 3.1 or 3.0; repeatable)
    python3 dev/run.py test -- -k hook -x   # arguments after "--" go to pytest
    python3 dev/run.py lint                 # ruff + mypy only (lines 3 and 2)
    python3 dev/run.py demo                 # the demo, in the Airflow 3 venv
    python3 dev/run.py bench                # the benchmarks (benchmarks/run.py), ~4 minutes
    python3 dev/run.py bench --quick        # a smoke run of them, ~1 minute
    python3 dev/run.py docs                 # the docs site (mkdocs.yml, docs/) into site/; --serve to preview
    python3 dev/run.py lock                 # re-resolve every constraint file (--airflow: some)

The venvs are installed side by side with uv (``uv pip install``, bootstrapped with pip into
``.venvs/uv-<version>``) when it can be, else with pip; ``--installer pip`` forces pip. Both
install the same pins. ``CENSUS_DEV_VENVS=<dir>`` puts the venvs somewhere else than ``.venvs/``.

Exit status is non-zero when any step failed; all steps still run, and a summary table closes
the output.
"""


from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

try:
    import tomllib
except ImportError:  # Python 3.10
    tomllib = None  # type: ignore[assignment]

ROOT = Path(__file__).resolve().parent.parent
# Where the venvs live; CENSUS_DEV_VENVS moves them (to try a fresh install beside existing ones).
VENVS = Path(os.environ.get("CENSUS_DEV_VENVS") or ROOT / ".venvs").expanduser()
VENVS = VENVS if VENVS.is_absolute() else ROOT / VENVS
CONSTRAINTS = ROOT / "constraints"

# The Airflow release each line is tested on. To move a line to a new release, change it here
# and run `python3 dev/run.py lock --airflow <line>`.
AIRFLOW_VERSIONS: dict[str, str] = {
    "3": "3.3.2",
    "2": "2.11.2",
    "3.2": "3.2.2",
    "3.1": "3.1.8",
    "3.0": "3.0.6",
}
# The full suite (ruff, mypy, every test) runs on these lines...
FULL_LINES: tuple[str, ...] = ("3", "2")
# ...and only the tests marked `smoke` (real DAG runs through dag.test()) on the older Airflow 3
# releases users still run: the latest patch release of each.
SMOKE_LINES: tuple[str, ...] = ("3.2", "3.1", "3.0")
SMOKE_MARKER = "smoke"
# `lock` resolves Airflow's own dependencies on a smoke line as of that Airflow release (a day
# or so after it reached PyPI), as Airflow's constraint files do: resolved against today's
# PyPI, an older Airflow gets libraries it never met (3.2.2 with cadwyn 9 and pydantic 2.14
# fails every task). The provider and its test tools are then added to that environment as a
# user would add them, upgrading only what they need. Move the date with the release.
LOCK_AS_OF: dict[str, str] = {"3.2": "2026-05-30", "3.1": "2026-03-14", "3.0": "2025-09-02"}
# Caps `lock` adds where even that is not enough. Airflow 3.1.8 asks for any SQLAlchemy >= 1.4.54,
# and SQLAlchemy 2.1 (out before it) breaks its sqlalchemy-utils: `airflow db migrate` fails with
# "module 'sqlalchemy.orm.attributes' has no attribute 'ScalarAttributeImpl'".
LOCK_CAPS: dict[str, list[str]] = {"3.1": ["SQLAlchemy<2.1"]}
LINES: tuple[str, ...] = FULL_LINES + SMOKE_LINES
# The project's extras each line installs (and `lock` resolves): the full lines also the optional
# integrations their tests cover; the smoke lines only what the smoke tests need.
FULL_EXTRAS = "test,openlineage,browser"
SMOKE_EXTRAS = "test"

PROJECT_NAME = "airflow-provider-census"
# The published provider the benchmarks compare against. It has our import name, so it gets a
# venv of its own, installed from PyPI with the Airflow 3 line's pins.
OFFICIAL_PROVIDER = "airflow-provider-census==2.1.0"
OFFICIAL_VENV = VENVS / "official-2.1.0"
LINT_DIRS = ("airflow_provider_census", "tests", "example_dags", "dev", "benchmarks")
# Bump when the install procedure changes so existing venvs are reinstalled.
INSTALL_RECIPE = "2"
# The installer of the venvs when it can be had: pinned, bootstrapped with pip into a venv of its own.
UV_VERSION = "0.13.9"
UV_VENV = VENVS / f"uv-{UV_VERSION}"
INSTALLERS = ("auto", "uv", "pip")

IS_CI = os.environ.get("CI", "").lower() not in ("", "0", "false", "no")
USE_COLOUR = not IS_CI and "NO_COLOR" not in os.environ and sys.stdout.isatty()

_print_lock = threading.Lock()


# --------------------------------------------------------------------------------------------
# Output helpers


def _c(text: str, code: str) -> str:
    return f"\033[{code}m{text}\033[0m" if USE_COLOUR else text


def say(text: str = "") -> None:
    with _print_lock:
        print(text, flush=True)


def banner(title: str) -> None:
    rule = "=" * 78
    say(_c(f"\n{rule}\n==> {title}\n{rule}", "1;36"))


def fmt_secs(secs: float) -> str:
    return f"{secs:.1f}s"


@dataclass
class Result:
    step: str
    line: str  # "3", "2" or "-" when the step is not tied to one Airflow line
    status: str  # "ok", "up to date", "FAILED ...", "skipped ..."
    seconds: float = 0.0

    @property
    def failed(self) -> bool:
        return self.status not in ("ok", "up to date")


@dataclass
class Report:
    results: list[Result] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, result: Result) -> Result:
        with self._lock:
            self.results.append(result)
        colour = "31" if result.failed else "32"
        label = f"Airflow {result.line}" if result.line != "-" else "all lines"
        say(_c(f"--> {result.step} ({label}): {result.status} in {fmt_secs(result.seconds)}", colour))
        return result

    @property
    def failed(self) -> bool:
        return any(r.failed for r in self.results)

    def print_summary(self, total: float) -> None:
        rows = [("step", "airflow", "result", "seconds")]
        rows += [(r.step, r.line, r.status, f"{r.seconds:.1f}") for r in self.results]
        widths = [max(len(row[i]) for row in rows) for i in range(4)]
        banner("Summary")
        for n, row in enumerate(rows):
            cells = [row[i].ljust(widths[i]) for i in range(3)] + [row[3].rjust(widths[3])]
            say("  ".join(cells))
            if n == 0:
                say("  ".join("-" * w for w in widths))
        verdict = "FAILED" if self.failed else "ALL PASSED"
        say(_c(f"\n{verdict} (total {fmt_secs(total)})", "1;31" if self.failed else "1;32"))


# --------------------------------------------------------------------------------------------
# Running commands


def run(
    cmd: Sequence[str | os.PathLike[str]],
    *,
    env: dict[str, str] | None = None,
    prefix: str | None = None,
    out: IO[str] | None = None,
) -> int:
    """Run ``cmd`` in the repo root; return its exit code.

    Output goes straight to our stdout by default, line by line with ``prefix`` when given
    (for commands running side by side), or into ``out`` (to be printed whole later).
    """
    args = [os.fspath(a) for a in cmd]
    if out is None and prefix is None:
        sys.stdout.flush()
        return subprocess.call(args, cwd=ROOT, env=env, stdin=subprocess.DEVNULL)
    proc = subprocess.Popen(
        args,
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
        bufsize=1,
    )
    assert proc.stdout is not None
    for line in proc.stdout:
        if out is not None:
            out.write(line)
        else:
            say(f"{prefix}{line.rstrip()}")
    return proc.wait()


def bin_dir(venv: Path) -> Path:
    return venv / ("Scripts" if os.name == "nt" else "bin")


def venv_python(venv: Path) -> Path:
    return bin_dir(venv) / ("python.exe" if os.name == "nt" else "python")


def venv_env(venv: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    for var in ("PYTHONHOME", "PYTHONPATH", "__PYVENV_LAUNCHER__"):
        env.pop(var, None)
    env["VIRTUAL_ENV"] = str(venv)
    env["PATH"] = os.pathsep.join([str(bin_dir(venv)), env.get("PATH", "")])
    env["PYTHONUNBUFFERED"] = "1"
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    if IS_CI:
        env["PIP_NO_INPUT"] = "1"
    if not USE_COLOUR:
        env["NO_COLOR"] = "1"
        env.pop("FORCE_COLOR", None)
    env.update(extra or {})
    return env


def airflow_env(home: Path) -> dict[str, str]:
    """A private AIRFLOW_HOME (SQLite, default settings) and no bundled example DAGs."""
    return {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        # Airflow's default, socket.getfqdn(), waits for reverse DNS on a machine without it.
        "AIRFLOW__CORE__HOSTNAME_CALLABLE": "socket.gethostname",
    }


def make_venv(venv: Path, *, prefix: str | None = None) -> int:
    """Create ``venv`` with the Python running this script, replacing a broken one."""
    py = venv_python(venv)
    if py.exists():
        probe = subprocess.run([py, "-c", "pass"], check=False, stdin=subprocess.DEVNULL, capture_output=True)
        if probe.returncode == 0:
            return 0
        say(f"{prefix or ''}{venv} is broken; recreating it")
    if venv.exists():
        shutil.rmtree(venv)
    say(f"{prefix or ''}creating {_short(venv)}")
    code = run([sys.executable, "-m", "venv", venv], prefix=prefix)
    if code == 0:
        return 0
    # Some system Pythons (Debian without python3-venv) lack ensurepip: make the venv without pip
    # and let the system pip install pip into it.
    say(f"{prefix or ''}`python3 -m venv` failed; retrying without ensurepip")
    shutil.rmtree(venv, ignore_errors=True)
    code = run([sys.executable, "-m", "venv", "--without-pip", venv], prefix=prefix)
    if code != 0:
        return code
    return run([sys.executable, "-m", "pip", "--python", py, "install", "pip"], prefix=prefix)


# --------------------------------------------------------------------------------------------
# Installing the per-line virtualenvs


def venv_path(line: str) -> Path:
    return VENVS / f"airflow-{line}"


def constraint_path(line: str) -> Path:
    return CONSTRAINTS / f"airflow-{line}.txt"


def project_spec(line: str) -> str:
    """The project as ``line`` installs it: with the extras the full lines test, or the smoke lines' fewer."""
    return f".[{SMOKE_EXTRAS if line in SMOKE_LINES else FULL_EXTRAS}]"


def install_hash(line: str) -> str:
    digest = hashlib.sha256()
    digest.update(f"recipe={INSTALL_RECIPE};python={sys.version_info[:3]}\n".encode())
    for path in (ROOT / "pyproject.toml", constraint_path(line)):
        digest.update(path.read_bytes())
    return digest.hexdigest()


class StepFailed(Exception):
    """A step failed; the message is the reason shown in the summary."""


def install_line(line: str, *, prefix: str | None, uv: Path | None = None) -> Result:
    """Create/refresh ``.venvs/airflow-<line>`` (with ``uv`` if given); skip everything when its stamp is current."""
    start = time.monotonic()
    try:
        status = _install_line(line, prefix or "", uv)
    except StepFailed as exc:
        status = f"FAILED ({exc})"
    return Result("install", line, status, time.monotonic() - start)


def _install_line(line: str, prefix: str, uv: Path | None) -> str:
    venv = venv_path(line)
    constraints = constraint_path(line)
    if not constraints.exists():
        say(f"{prefix}missing {constraints.relative_to(ROOT)}; run `python3 dev/run.py lock`")
        raise StepFailed("no constraint file")
    if not (ROOT / "README.md").exists():
        # hatchling refuses to build the project without the readme named in pyproject.toml.
        say(f"{prefix}README.md is missing; the editable install needs it")
        raise StepFailed("README.md missing")
    packages: list[str | os.PathLike[str]] = ["--build-constraint", constraints, "-e", project_spec(line)]
    return install_venv(venv, constraints, install_hash(line), packages, prefix=prefix, uv=uv)


def install_venv(
    venv: Path,
    constraints: Path,
    wanted: str,
    packages: Sequence[str | os.PathLike[str]],
    *,
    prefix: str = "",
    uv: Path | None = None,
    out: IO[str] | None = None,
) -> str:
    """Make ``venv`` hold ``packages`` pinned by ``constraints``; skip it all when its stamp says ``wanted``.

    ``packages`` are pip install arguments. With ``uv``, uv installs the same pins (and the
    pinned pip, so the venv looks as pip would have left it). ``out`` takes the installers'
    output instead of our stdout (a log file).
    """
    stamp = venv / ".install-stamp"
    if venv_python(venv).exists() and stamp.exists() and stamp.read_text().strip() == wanted:
        if out is None:
            say(f"{prefix}{_short(venv)} is up to date with {_short(constraints)}")
        return "up to date"
    if uv is not None:
        return _uv_install(uv, venv, constraints, wanted, packages, prefix=prefix, out=out)

    if make_venv(venv, prefix=prefix) != 0:
        raise StepFailed("venv creation")
    stamp.unlink(missing_ok=True)
    env = venv_env(venv)
    pip = [venv_python(venv), "-m", "pip", "--disable-pip-version-check", "--no-input"]
    # pip itself is pinned in the constraint file too; the pinned pip knows --build-constraint.
    code = run(
        [*pip, "install", "--progress-bar", "off", "--upgrade", "-c", constraints, "pip"],
        env=env,
        prefix=prefix,
        out=out,
    )
    if code != 0:
        raise StepFailed(f"pip upgrade, exit {code}")
    code = run(
        [*pip, "install", "--progress-bar", "off", "-c", constraints, *packages], env=env, prefix=prefix, out=out
    )
    if code != 0:
        raise StepFailed(f"pip install, exit {code}")
    stamp.write_text(wanted + "\n")
    return "ok"


def _uv_install(
    uv: Path,
    venv: Path,
    constraints: Path,
    wanted: str,
    packages: Sequence[str | os.PathLike[str]],
    *,
    prefix: str,
    out: IO[str] | None = None,
) -> str:
    stamp = venv / ".install-stamp"
    env = venv_env(venv, {"UV_PYTHON_DOWNLOADS": "never", "UV_NO_PROGRESS": "1"})
    py = venv_python(venv)
    if py.exists():
        probe = subprocess.run([py, "-c", "pass"], check=False, stdin=subprocess.DEVNULL, capture_output=True)
        if probe.returncode != 0:
            _note(f"{prefix}{_short(venv)} is broken; recreating it", out)
            shutil.rmtree(venv)
    if not py.exists():
        shutil.rmtree(venv, ignore_errors=True)
        _note(f"{prefix}creating {_short(venv)} (uv)", out)
        code = run([uv, "venv", "--quiet", "--python", sys.executable, venv], env=env, prefix=prefix, out=out)
        if code != 0:
            raise StepFailed(f"uv venv, exit {code}")
    stamp.unlink(missing_ok=True)
    # pip's --build-constraint is uv's --build-constraints.
    args = ["--build-constraints" if os.fspath(arg) == "--build-constraint" else os.fspath(arg) for arg in packages]
    if "-e" in args:
        # pip rebuilds an editable project on every install; uv would keep the one it built before.
        args = ["--reinstall-package", _norm(PROJECT_NAME), *args]
    cmd: list[str | os.PathLike[str]] = [
        uv,
        "pip",
        "install",
        "--python",
        py,
        # pip compiles what it installs; without it every Airflow process would compile Airflow again.
        "--compile-bytecode",
        "-c",
        constraints,
        "pip",
        *args,
    ]
    code = run(cmd, env=env, prefix=prefix, out=out)
    if code != 0:
        raise StepFailed(f"uv pip install, exit {code}; `--installer pip` installs with pip instead")
    stamp.write_text(wanted + "\n")
    return "ok"


def _note(text: str, out: IO[str] | None) -> None:
    """A progress line: on our stdout, or into ``out`` (a log file) when given."""
    if out is None:
        say(text)
    else:
        out.write(text + "\n")


_uv_lock = threading.Lock()
_uv_found: dict[str, Path | None] = {}


def find_uv(installer: str) -> Path | None:
    """The pinned uv for ``installer`` ``auto`` or ``uv``, bootstrapped with pip once; None means pip.

    ``auto`` falls back to pip when uv cannot be had (no wheel for this platform, no index);
    ``uv`` fails instead.
    """
    if installer == "pip":
        return None
    with _uv_lock:
        if UV_VERSION not in _uv_found:
            _uv_found[UV_VERSION] = _bootstrap_uv()
        uv = _uv_found[UV_VERSION]
    if uv is None and installer == "uv":
        raise StepFailed(f"uv {UV_VERSION} could not be installed")
    if uv is None:
        say(f"uv {UV_VERSION} could not be installed; installing with pip instead")
    return uv


def _bootstrap_uv() -> Path | None:
    uv = bin_dir(UV_VENV) / ("uv.exe" if os.name == "nt" else "uv")

    def version_ok() -> bool:
        if not uv.exists():
            return False
        found = subprocess.run([uv, "--version"], check=False, capture_output=True, text=True, stdin=subprocess.DEVNULL)
        return found.returncode == 0 and found.stdout.split()[1:2] == [UV_VERSION]

    if version_ok():
        return uv
    prefix = "[uv] "
    if make_venv(UV_VENV, prefix=prefix) != 0:
        return None
    pip = [venv_python(UV_VENV), "-m", "pip", "--disable-pip-version-check", "--no-input"]
    code = run([*pip, "install", "--progress-bar", "off", f"uv=={UV_VERSION}"], env=venv_env(UV_VENV), prefix=prefix)
    return uv if code == 0 and version_ok() else None


def install_lines(lines: Sequence[str], report: Report, installer: str = "auto") -> list[str]:
    """Install the venvs (side by side when there are several); return the lines that are ready."""
    names = ", ".join(f"Airflow {line} ({AIRFLOW_VERSIONS[line]})" for line in lines)
    banner(f"Install: {names}")
    results: dict[str, Result] = {}
    start = time.monotonic()
    try:
        uv = find_uv(installer)
    except StepFailed as exc:
        for line in lines:
            report.add(Result("install", line, f"FAILED ({exc})", time.monotonic() - start))
        return []
    say(f"installing with {'uv ' + UV_VERSION if uv else 'pip'}")

    def work(line: str) -> None:
        prefix = f"[airflow-{line}] " if len(lines) > 1 else ""
        try:
            results[line] = install_line(line, prefix=prefix, uv=uv)
        except Exception as exc:  # keep the other line going, report this one
            results[line] = Result("install", line, f"FAILED ({type(exc).__name__}: {exc})")

    threads = [threading.Thread(target=work, args=(line,), daemon=True) for line in lines]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for line in lines:
        report.add(results[line])
    return [line for line in lines if not results[line].failed]


# --------------------------------------------------------------------------------------------
# Checks


@dataclass
class Check:
    step: str
    line: str
    cmd: list[str | os.PathLike[str]]
    env: dict[str, str]
    cleanup: Callable[[], None] = lambda: None


def ruff_check(line: str) -> Check | None:
    dirs = [d for d in LINT_DIRS if (ROOT / d).is_dir()]
    if not dirs:
        return None
    venv = venv_path(line)
    return Check("ruff", line, [bin_dir(venv) / "ruff", "check", *dirs], venv_env(venv))


def mypy_check(line: str) -> Check:
    venv = venv_path(line)
    # Each venv keeps its own cache: the two Airflow versions would otherwise evict each other.
    cmd: list[str | os.PathLike[str]] = [venv_python(venv), "-m", "mypy", "--cache-dir", venv / ".mypy_cache"]
    return Check("mypy", line, cmd, venv_env(venv))


def smoke_args(pytest_args: Sequence[str]) -> list[str]:
    """``pytest_args`` limited to the smoke tests: ``-m smoke``, or ``-m "smoke and (EXPR)"`` given ``-m EXPR``."""
    rest: list[str] = []
    expr: str | None = None
    args = iter(pytest_args)
    for arg in args:
        if arg == "--":
            rest += [arg, *args]
            break
        if arg == "-m":
            expr = next(args, "")
        elif arg.startswith("-m") and not arg.startswith("--"):
            expr = arg[2:].lstrip("=")
        else:
            rest.append(arg)
    marker = SMOKE_MARKER if not expr else f"{SMOKE_MARKER} and ({expr})"
    return ["-m", marker, *rest]


def pytest_check(line: str, pytest_args: Sequence[str]) -> Check:
    venv = venv_path(line)
    home = Path(tempfile.mkdtemp(prefix=f"airflow-home-{line}-"))
    smoke = line in SMOKE_LINES
    cmd: list[str | os.PathLike[str]] = [
        venv_python(venv),
        "-m",
        "pytest",
        "-o",
        f"cache_dir={venv / '.pytest_cache'}",
        "--durations=15",  # the slowest tests of every run, to keep the suite's time in view
        *(smoke_args(pytest_args) if smoke else pytest_args),
    ]
    env = venv_env(venv, airflow_env(home))
    step = f"pytest -m {SMOKE_MARKER}" if smoke else "pytest"
    return Check(step, line, cmd, env, cleanup=lambda: shutil.rmtree(home, ignore_errors=True))


def describe(code: int, step: str) -> str:
    if code == 0:
        return "ok"
    if step.startswith("pytest") and code == 5:
        return "FAILED (no tests collected)"
    return f"FAILED (exit {code})"


def run_check_streaming(check: Check, report: Report) -> None:
    banner(f"{check.step} [Airflow {check.line}]  $ {' '.join(_short(a) for a in check.cmd)}")
    start = time.monotonic()
    try:
        code = run(check.cmd, env=check.env)
    finally:
        check.cleanup()
    report.add(Result(check.step, check.line, describe(code, check.step), time.monotonic() - start))


# A lane: its checks, or what makes them once the lane starts (the smoke lane installs its venvs first).
Lane = list[Check] | Callable[[], list[Check]]


def run_checks_in_lanes(lanes: Sequence[Lane], report: Report) -> None:
    """Run each lane's checks one after another, the lanes side by side.

    Output is captured per check and printed whole, lane after lane, as soon as it can be.
    """
    finished: list[list[tuple[Check, str, int, float] | None]] = [[] for _ in lanes]
    done = threading.Condition()

    def work(n: int, lane: Lane) -> None:
        try:
            for check in lane() if callable(lane) else lane:
                start = time.monotonic()
                with tempfile.TemporaryFile("w+", encoding="utf-8", errors="replace") as buf:
                    try:
                        code = run(check.cmd, env=check.env, out=buf)
                    except Exception as exc:
                        buf.write(f"\n{type(exc).__name__}: {exc}\n")
                        code = -1
                    finally:
                        check.cleanup()
                    buf.seek(0)
                    text = buf.read()
                with done:
                    finished[n].append((check, text, code, time.monotonic() - start))
                    done.notify_all()
        except Exception as exc:  # a lane that cannot make its checks: report it, keep the others going
            report.add(Result("lane", "-", f"FAILED ({type(exc).__name__}: {exc})"))
        finally:
            with done:
                finished[n].append(None)
                done.notify_all()

    say("\nRunning the checks side by side; each one's output follows when it is done.")
    threads = [threading.Thread(target=work, args=(n, lane), daemon=True) for n, lane in enumerate(lanes)]
    for t in threads:
        t.start()
    for n in range(len(lanes)):
        for i in itertools.count():

            def arrived(n: int = n, i: int = i) -> bool:
                return len(finished[n]) > i

            with done:
                done.wait_for(arrived)
                item = finished[n][i]
            if item is None:
                break
            check, text, code, secs = item
            banner(f"{check.step} [Airflow {check.line}]  $ {' '.join(_short(a) for a in check.cmd)}")
            with _print_lock:
                sys.stdout.write(text if text.endswith("\n") or not text else text + "\n")
                sys.stdout.flush()
            report.add(Result(check.step, check.line, describe(code, check.step), secs))
    for t in threads:
        t.join()


def _short(arg: str | os.PathLike[str]) -> str:
    text = os.fspath(arg)
    try:
        return str(Path(text).relative_to(ROOT)) if os.path.isabs(text) else text
    except ValueError:
        return text


def _report_not_installed(
    lines: Sequence[str], ready: Sequence[str], pytest_args: Sequence[str] | None, report: Report
) -> None:
    for line in lines:
        if line not in ready:
            steps = ["mypy"] if line == "3" else []
            if pytest_args is not None:
                steps.append(f"pytest -m {SMOKE_MARKER}" if line in SMOKE_LINES else "pytest")
            for step in steps:
                report.add(Result(step, line, "skipped (install failed)"))


def cmd_checks(lines: Sequence[str], pytest_args: Sequence[str] | None, *, serial: bool, installer: str) -> int:
    start = time.monotonic()
    report = Report()
    full = [line for line in lines if line not in SMOKE_LINES]
    smoke = [line for line in lines if line in SMOKE_LINES]
    # Side by side, the smoke lines install in their own lane once the full lines are installed:
    # the full suites, the longest checks, start sooner, and the smoke lane still ends first.
    staggered = not serial and pytest_args is not None and bool(full) and bool(smoke)
    first = full if staggered else [*full, *smoke]
    ready = install_lines(first, report, installer)
    _report_not_installed(first, ready, pytest_args, report)

    if ready:
        # ruff does not depend on Airflow: run it once, in the first ready venv (Airflow 3 by default).
        ruff = ruff_check(ready[0])
        if ruff is not None:
            run_check_streaming(ruff, report)
    else:
        report.add(Result("ruff", "-", "skipped (install failed)"))

    def full_lane(line: str) -> list[Check]:
        # The package is typed against Airflow 3's Task SDK (airflow.sdk), which Airflow 2
        # lacks, so mypy runs once, on the Airflow 3 line; Airflow 2 is covered by the tests.
        lane = [mypy_check(line)] if line == "3" else []
        return lane + ([pytest_check(line, pytest_args)] if pytest_args is not None else [])

    def smoke_lane() -> list[Check]:
        smoke_ready = install_lines(smoke, report, installer)
        _report_not_installed(smoke, smoke_ready, pytest_args, report)
        return [pytest_check(line, pytest_args or []) for line in smoke_ready]

    # One lane per full line, and one for the smoke lines, one after another: they take a few
    # minutes together, less than the full suites beside them.
    lanes: list[Lane] = [full_lane(line) for line in ready if line in full]
    if staggered:
        lanes.append(smoke_lane)
    elif pytest_args is not None:
        lanes.append([pytest_check(line, pytest_args) for line in ready if line in smoke])
    if pytest_args is not None:
        # The docs build and the distributions' check need no Airflow: small venvs of their own,
        # one lane beside the others.
        docs, package = docs_lane(report, installer), package_lane(report, installer)
        lanes.append(lambda: docs() + package())
    lanes = [lane for lane in lanes if callable(lane) or lane]
    if serial or len(lanes) == 1:
        for lane in lanes:
            for check in lane() if callable(lane) else lane:
                run_check_streaming(check, report)
    elif lanes:
        run_checks_in_lanes(lanes, report)

    report.print_summary(time.monotonic() - start)
    return 1 if report.failed else 0


# --------------------------------------------------------------------------------------------
# demo


def cmd_demo(demo_args: Sequence[str], installer: str) -> int:
    report = Report()
    if not install_lines(["3"], report, installer):
        report.print_summary(0.0)
        return 1
    banner("Demo [Airflow 3]")
    with tempfile.TemporaryDirectory(prefix="airflow-home-demo-") as home:
        env = venv_env(venv_path("3"), airflow_env(Path(home)))
        return run([venv_python(venv_path("3")), ROOT / "dev" / "demo.py", *demo_args], env=env)


# --------------------------------------------------------------------------------------------
# bench


def official_install_hash() -> str:
    digest = hashlib.sha256()
    digest.update(f"recipe={INSTALL_RECIPE};python={sys.version_info[:3]};{OFFICIAL_PROVIDER}\n".encode())
    digest.update(constraint_path("3").read_bytes())
    return digest.hexdigest()


def install_official(installer: str) -> Result:
    """Create/refresh the published provider's venv: Airflow 3 pinned by our constraint file."""
    start = time.monotonic()
    packages = [f"apache-airflow=={AIRFLOW_VERSIONS['3']}", OFFICIAL_PROVIDER]
    try:
        uv = find_uv(installer)
        status = install_venv(OFFICIAL_VENV, constraint_path("3"), official_install_hash(), packages, uv=uv)
    except StepFailed as exc:
        status = f"FAILED ({exc})"
    return Result(f"install {OFFICIAL_PROVIDER}", "3", status, time.monotonic() - start)


def cmd_bench(bench_args: Sequence[str], installer: str) -> int:
    """Install both full lines and the published provider, then run benchmarks/run.py in the Airflow 3 venv."""
    start = time.monotonic()
    report = Report()
    ready = install_lines(FULL_LINES, report, installer)
    if "3" not in ready:
        report.print_summary(time.monotonic() - start)
        return 1
    banner(f"Install: {OFFICIAL_PROVIDER} with Airflow {AIRFLOW_VERSIONS['3']}, for comparison")
    official = report.add(install_official(installer))
    args = [*bench_args]
    if not official.failed:
        args += ["--official-python", str(venv_python(OFFICIAL_VENV))]
    if "2" in ready:
        args += ["--airflow2-python", str(venv_python(venv_path("2")))]
    banner("Benchmarks (figures only: nothing here passes or fails on a timing)")
    bench_start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="airflow-home-bench-") as home:
        env = venv_env(venv_path("3"), airflow_env(Path(home)))
        code = run([venv_python(venv_path("3")), ROOT / "benchmarks" / "run.py", *args], env=env)
    report.add(Result("bench", "-", describe(code, "bench"), time.monotonic() - bench_start))
    report.print_summary(time.monotonic() - start)
    return 1 if report.failed else 0


# --------------------------------------------------------------------------------------------
# docs

# The docs site (mkdocs.yml, docs/) is built in a venv of its own, pinned by constraints/docs.txt:
# MkDocs, Material and mkdocstrings, which read the sources statically (no Airflow needed).
DOCS_VENV = VENVS / "docs"
DOCS_CONSTRAINTS = CONSTRAINTS / "docs.txt"
DOCS_PACKAGES = ("mkdocs", "mkdocs-material", "mkdocstrings[python]")
DOCS_SITE = ROOT / "site"
# Where steps that keep quiet write their full output.
LOGS = VENVS / "logs"


def docs_env() -> dict[str, str]:
    # NO_MKDOCS_2_WARNING: Material's notice about MkDocs 2, printed on every build.
    return venv_env(DOCS_VENV, {"NO_MKDOCS_2_WARNING": "1"})


def install_docs(installer: str) -> Result:
    return install_tool_venv("docs", DOCS_VENV, DOCS_CONSTRAINTS, DOCS_PACKAGES, installer)


def install_tool_venv(name: str, venv: Path, constraints: Path, packages: Sequence[str], installer: str) -> Result:
    """Create/refresh a tool's own venv; the installer's output goes to .venvs/logs/<name>-install.log."""
    start = time.monotonic()
    log = LOGS / f"{name}-install.log"
    LOGS.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256(f"recipe={INSTALL_RECIPE};python={sys.version_info[:3]};{packages}\n".encode())
    digest.update(constraints.read_bytes())
    with log.open("w", encoding="utf-8") as out:
        try:
            uv = find_uv(installer)
            status = install_venv(venv, constraints, digest.hexdigest(), list(packages), uv=uv, out=out)
        except StepFailed as exc:
            status = f"FAILED ({exc})"
    if status.startswith("FAILED"):
        lines = log.read_text(encoding="utf-8", errors="replace").splitlines()
        say(f"install {name} failed; the end of {_short(log)}:")
        for line in lines[-20:]:
            say(f"    {line}")
    return Result(f"install {name}", "-", status, time.monotonic() - start)


def docs_check() -> Check:
    """``mkdocs build --strict`` into a temporary directory: any warning (a broken link, a docstring) fails."""
    out = Path(tempfile.mkdtemp(prefix="census-site-"))
    mkdocs = bin_dir(DOCS_VENV) / "mkdocs"
    cmd: list[str | os.PathLike[str]] = [mkdocs, "build", "--strict", "--quiet", "--site-dir", out]
    return Check("docs (mkdocs --strict)", "-", cmd, docs_env(), cleanup=lambda: shutil.rmtree(out, ignore_errors=True))


def docs_lane(report: Report, installer: str) -> Callable[[], list[Check]]:
    """The docs lane of `test`: install .venvs/docs, then the strict build, beside the pytest lanes."""

    def lane() -> list[Check]:
        installed = report.add(install_docs(installer))
        return [] if installed.failed else [docs_check()]

    return lane


def cmd_docs(serve: bool, mkdocs_args: Sequence[str], installer: str) -> int:
    """Build the site into site/ (strict), or serve it with live reload."""
    start = time.monotonic()
    report = Report()
    if not report.add(install_docs(installer)).failed:
        mkdocs = bin_dir(DOCS_VENV) / "mkdocs"
        if serve:
            return run([mkdocs, "serve", "--strict", *mkdocs_args], env=docs_env())
        t0 = time.monotonic()
        cmd = [mkdocs, "build", "--strict", "--quiet", "--site-dir", DOCS_SITE, *mkdocs_args]
        code = run(cmd, env=docs_env())
        report.add(Result(f"docs -> {_short(DOCS_SITE)}/", "-", describe(code, "docs"), time.monotonic() - t0))
    report.print_summary(time.monotonic() - start)
    return 1 if report.failed else 0


# --------------------------------------------------------------------------------------------
# package

# The sdist and wheel are built offline with the pinned backend and checked (dev/package_check.py)
# in a venv of their own, pinned by constraints/package.txt.
PACKAGE_VENV = VENVS / "package"
PACKAGE_CONSTRAINTS = CONSTRAINTS / "package.txt"
PACKAGE_TOOLS = ("build", "twine", "trove-classifiers", "hatchling")


def package_lane(report: Report, installer: str) -> Callable[[], list[Check]]:
    """The package lane of `test`: install .venvs/package, then build and check the distributions."""

    def lane() -> list[Check]:
        tools = install_tool_venv("package", PACKAGE_VENV, PACKAGE_CONSTRAINTS, PACKAGE_TOOLS, installer)
        installed = report.add(tools)
        if installed.failed:
            return []
        cmd: list[str | os.PathLike[str]] = [venv_python(PACKAGE_VENV), ROOT / "dev" / "package_check.py"]
        return [Check("package (build, twine check)", "-", cmd, venv_env(PACKAGE_VENV))]

    return lane


# --------------------------------------------------------------------------------------------
# lock


def build_requires() -> list[str]:
    """The [build-system] requires of pyproject.toml (tomllib is 3.11+, so fall back to a regex)."""
    text = (ROOT / "pyproject.toml").read_text()
    if tomllib is not None:
        return list(tomllib.loads(text)["build-system"]["requires"])
    section = re.search(r"^\[build-system\](.*?)(?=^\[|\Z)", text, re.S | re.M)
    body = section.group(1) if section else ""
    found = re.search(r"requires\s*=\s*\[(.*?)\]", body, re.S)
    return re.findall(r"[\"']([^\"']+)[\"']", found.group(1)) if found else []


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def lock_line(line: str, workdir: Path, *, prefix: str) -> tuple[bool, str]:
    """Resolve one line from scratch in a throwaway venv; return (ok, constraint file text)."""
    version = AIRFLOW_VERSIONS[line]
    venv = workdir / f"airflow-{line}"
    if make_venv(venv, prefix=prefix) != 0:
        return False, ""
    py = venv_python(venv)
    env = venv_env(venv)
    pip = [py, "-m", "pip", "--disable-pip-version-check", "--no-input"]
    if run([*pip, "install", "--progress-bar", "off", "--upgrade", "pip"], env=env, prefix=prefix):
        return False, ""
    as_of = LOCK_AS_OF.get(line)
    cutoff = f"{as_of}T00:00:00Z"
    airflow = [f"apache-airflow=={version}", *LOCK_CAPS.get(line, [])]
    if as_of and run(
        [*pip, "install", "--progress-bar", "off", "--uploaded-prior-to", cutoff, *airflow],
        env=env,
        prefix=prefix,
    ):
        return False, ""
    if run(
        [*pip, "install", "--progress-bar", "off", *airflow, "-e", project_spec(line)],
        env=env,
        prefix=prefix,
    ):
        return False, ""
    frozen = subprocess.run(
        [*pip, "freeze", "--exclude-editable"],
        check=False,
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
    )
    if frozen.returncode != 0:
        say(f"{prefix}{frozen.stderr}")
        return False, ""
    pins: dict[str, str] = {}
    for raw in frozen.stdout.splitlines():
        entry = raw.strip()
        if not entry or entry.startswith(("#", "-e")) or "==" not in entry:
            continue
        name = entry.split("==", 1)[0]
        if _norm(name) != _norm(PROJECT_NAME):
            pins[_norm(name)] = entry
    pip_version = subprocess.run(
        [py, "-c", "import pip; print(pip.__version__)"],
        check=False,
        env=env,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
    ).stdout.strip()
    pins.setdefault("pip", f"pip=={pip_version}")

    # The build backend runs in pip's isolated build env; resolve it against the same pins so the
    # file can also be passed as --build-constraint.
    runtime = workdir / f"runtime-{line}.txt"
    runtime.write_text("\n".join(pins.values()) + "\n")
    report_file = workdir / f"build-{line}.json"
    code = run(
        [
            *pip,
            "install",
            "--dry-run",
            "--ignore-installed",
            "--quiet",
            "--report",
            report_file,
            "-c",
            runtime,
            *build_requires(),
        ],
        env=env,
        prefix=prefix,
    )
    if code != 0:
        return False, ""
    build_pins: list[str] = []
    for item in json.loads(report_file.read_text())["install"]:
        meta = item["metadata"]
        if _norm(meta["name"]) not in pins:
            build_pins.append(f"{meta['name']}=={meta['version']}")

    py_ver = ".".join(map(str, sys.version_info[:2]))
    quoted = " ".join(f'"{req}"' for req in airflow)
    as_of_step = [f"#     pip install --uploaded-prior-to {cutoff} {quoted}"] if as_of else []
    header = [
        f"# Pinned environment for testing {PROJECT_NAME} on Apache Airflow {version}.",
        "#",
        "# Generated by `python3 dev/run.py lock` -- do not edit by hand, rerun it instead. It resolved",
        f"# a fresh Python {py_ver} venv from PyPI:",
        "#     pip install --upgrade pip",
        *as_of_step,
        f'#     pip install {quoted} -e "{project_spec(line)}"',
        "#     pip freeze --exclude-editable      (minus the project itself, plus pip)",
        "# and then the build backend from [build-system] requires, resolved against those pins.",
        f"# `dev/run.py` installs .venvs/airflow-{line} with this file as both -c and --build-constraint.",
        f"# python: {py_ver}",
        "",
    ]
    body = sorted(pins.values(), key=str.lower)
    tail = ["", "# build backend (pip's isolated build environment)", *sorted(build_pins, key=str.lower)]
    return True, "\n".join(header + body + (tail if build_pins else [])) + "\n"


def cmd_lock(lines: Sequence[str]) -> int:
    start = time.monotonic()
    report = Report()
    if not (ROOT / "README.md").exists():
        say("README.md is missing; the editable install of the project needs it.")
        return 1
    banner("Lock: " + ", ".join(f"Airflow {line} ({AIRFLOW_VERSIONS[line]})" for line in lines))
    texts: dict[str, tuple[bool, str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="census-lock-") as tmp:

        def work(line: str) -> None:
            t0 = time.monotonic()
            try:
                ok, text = lock_line(line, Path(tmp), prefix=f"[lock airflow-{line}] ")
            except Exception as exc:
                say(f"[lock airflow-{line}] {type(exc).__name__}: {exc}")
                ok, text = False, ""
            texts[line] = (ok, text, time.monotonic() - t0)

        threads = [threading.Thread(target=work, args=(line,), daemon=True) for line in lines]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    CONSTRAINTS.mkdir(exist_ok=True)
    for line in lines:
        ok, text, secs = texts[line]
        if ok:
            constraint_path(line).write_text(text)
            count = sum(1 for x in text.splitlines() if x and not x.startswith("#"))
            say(f"wrote {constraint_path(line).relative_to(ROOT)} ({count} pins)")
        report.add(Result("lock", line, "ok" if ok else "FAILED", secs))
    report.print_summary(time.monotonic() - start)
    return 1 if report.failed else 0


# --------------------------------------------------------------------------------------------
# CLI


def warn_python_mismatch(lines: Sequence[str]) -> None:
    here = ".".join(map(str, sys.version_info[:2]))
    for line in lines:
        path = constraint_path(line)
        if not path.exists():
            continue
        found = re.search(r"^# python: (\S+)", path.read_text(), re.M)
        if found and found.group(1) != here:
            say(
                f"note: {path.relative_to(ROOT)} was resolved on Python {found.group(1)}, "
                f"this is Python {here}; the pins may not all fit."
            )


def main(argv: Sequence[str]) -> int:
    argv = list(argv)
    extra: list[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, extra = argv[:cut], argv[cut + 1 :]

    parser = argparse.ArgumentParser(
        prog="python3 dev/run.py",
        description="Install, lint and test airflow-provider-census on every supported Airflow line.",
        epilog="Arguments after `--` go to pytest (test), dev/demo.py (demo), benchmarks/run.py (bench) "
        "or mkdocs (docs).",
    )
    parser.add_argument("command", choices=["test", "lint", "demo", "bench", "docs", "lock"])
    parser.add_argument(
        "--airflow",
        action="append",
        choices=LINES,
        help="Airflow line to use (repeatable; default: all lines, for lint 3 and 2). "
        f"{', '.join(SMOKE_LINES)} run only `pytest -m {SMOKE_MARKER}`. Not used by demo and bench.",
    )
    parser.add_argument(
        "--serial",
        action="store_true",
        help="run the per-line checks one after another with live output (default: side by side)",
    )
    parser.add_argument("--fresh", action="store_true", help="delete the selected venvs and reinstall")
    parser.add_argument(
        "--installer",
        choices=INSTALLERS,
        default=os.environ.get("CENSUS_DEV_INSTALLER", "auto"),
        help=f"what installs the venvs: uv {UV_VERSION} (bootstrapped with pip), pip, or auto: uv when it "
        "can be installed, else pip (default; env CENSUS_DEV_INSTALLER)",
    )
    parser.add_argument("--triggers", type=int, help="bench: waits per trigger population (default 1000)")
    parser.add_argument("--quick", action="store_true", help="bench: a smoke run (200 waits, short intervals)")
    parser.add_argument(
        "--serve", action="store_true", help="docs: serve the site on 127.0.0.1:8000, rebuilt on changes"
    )
    args = parser.parse_args(argv)
    # The smoke lines have no lint step of their own (ruff runs once, mypy on line 3).
    default_lines = FULL_LINES if args.command == "lint" else LINES
    lines = [line for line in LINES if line in (args.airflow or default_lines)]

    if extra and args.command not in ("test", "demo", "bench", "docs"):
        parser.error(f"`--` arguments are only for test, demo, bench and docs, not {args.command}")
    if args.serve and args.command != "docs":
        parser.error("--serve is an option of docs")
    if (args.triggers or args.quick) and args.command != "bench":
        parser.error("--triggers and --quick are options of bench")

    if args.fresh and args.command != "lock":
        for line in ["3"] if args.command == "demo" else lines:
            if venv_path(line).exists():
                say(f"removing {_short(venv_path(line))}")
                shutil.rmtree(venv_path(line))
        if args.command == "docs" and DOCS_VENV.exists():
            say(f"removing {_short(DOCS_VENV)}")
            shutil.rmtree(DOCS_VENV)
        if args.command == "bench" and OFFICIAL_VENV.exists():
            say(f"removing {_short(OFFICIAL_VENV)}")
            shutil.rmtree(OFFICIAL_VENV)

    if args.command == "lock":
        return cmd_lock(lines)
    if args.command == "docs":
        return cmd_docs(args.serve, extra, args.installer)
    warn_python_mismatch(["3"] if args.command == "demo" else lines)
    if args.command == "demo":
        return cmd_demo(extra, args.installer)
    if args.command == "bench":
        bench_args = [
            *(["--quick"] if args.quick else []),
            *(["--triggers", str(args.triggers)] if args.triggers else []),
        ]
        return cmd_bench([*bench_args, *extra], args.installer)
    pytest_args = extra if args.command == "test" else None
    return cmd_checks(lines, pytest_args, serial=args.serial, installer=args.installer)


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except KeyboardInterrupt:
        say("\ninterrupted")
        sys.exit(130)
