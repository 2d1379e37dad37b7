"""The project's sessions, for nox (https://nox.thea.codes) with uv as the venv backend.

``python3 dev/run.py`` gets nox and uv (pinned by ``constraints/tools.txt``) into a venv of
their own and runs nox; ``python3 dev/run.py test`` is ``nox --parallel 3``, the sessions CI
runs, side by side. With nox already at hand, ``nox -s <session>`` does the same thing:

    tests-3, tests-2        pytest, every test, on Airflow 3.3.2 and 2.11.2
    smoke-3.2/3.1/3.0       pytest -m smoke on the older Airflow 3 releases users still run
    lint                    ruff check, ruff format --check, mypy --strict (against Airflow 3)
    docs                    the docs site into site/, warnings as errors
    package                 the sdist and wheel, built and checked (dev/package_check.py)
    demo                    the example DAG in real Airflow 3 against the emulator (not in CI)
    bench                   benchmarks/run.py beside the published 2.1 provider (not in CI)
    docs-serve              the docs on 127.0.0.1:8000, rebuilt on changes (not in CI)
    lock                    re-resolve constraints/airflow-*.txt (not in CI)

Arguments after ``--`` go to pytest (tests, smoke), dev/demo.py, benchmarks/run.py or mkdocs.
Every Airflow line installs from ``constraints/airflow-<line>.txt``, its pins also its build
constraints; an installer's output goes to ``install.log`` in the session's venv, and only
when it fails is its end shown.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import nox
from nox.command import CommandFailed

nox.needs_version = ">=2026.10.20"
nox.options.default_venv_backend = "uv"
nox.options.reuse_venv = "yes"
nox.options.error_on_external_run = True

ROOT = Path(__file__).resolve().parent
CONSTRAINTS = ROOT / "constraints"
PROJECT_NAME = "airflow-provider-census"

# The Airflow release each line is tested on. To move a line to a new release, change it here
# and run `python3 dev/run.py lock <line>`.
AIRFLOW_VERSIONS: dict[str, str] = {"3": "3.3.2", "2": "2.11.2", "3.2": "3.2.2", "3.1": "3.1.8", "3.0": "3.0.6"}
FULL_LINES = ("3", "2")
"""Ruff, mypy and every test run on these lines..."""
SMOKE_LINES = ("3.2", "3.1", "3.0")
"""...and only the tests marked ``smoke`` (real DAG runs) on the latest patch of each older Airflow 3."""
SMOKE_MARKER = "smoke"
FULL_EXTRAS = "test,openlineage,browser,cosmos"
"""The extras the full lines install: the optional integrations their tests cover."""
SMOKE_EXTRAS = "test"

LOCK_AS_OF: dict[str, str] = {"3.2": "2026-05-30", "3.1": "2026-03-14", "3.0": "2025-09-02"}
"""``lock`` resolves Airflow's own dependencies on a smoke line as of that release (a day or so
after it reached PyPI), as Airflow's constraint files do: against today's PyPI an older Airflow
gets libraries it never met (3.2.2 with cadwyn 9 and pydantic 2.14 fails every task). The
provider and its test tools are then added as a user would add them, keeping those pins where
they fit. Move the date with the release."""
LOCK_CAPS: dict[str, list[str]] = {"3.1": ["SQLAlchemy<2.1"]}
"""Caps where the date is not enough: Airflow 3.1.8 takes any SQLAlchemy >= 1.4.54, and 2.1 breaks it."""

LINT_DIRS = ("airflow_provider_census", "tests", "example_dags", "dev", "benchmarks", "noxfile.py")
OFFICIAL_PROVIDER = "airflow-provider-census==2.1.0"
"""The published provider the benchmarks compare with; it has our import name, so a venv of its own."""
DOCS_PACKAGES = ("mkdocs", "mkdocs-material", "mkdocstrings[python]")
PACKAGE_TOOLS = ("build", "twine", "trove-classifiers", "hatchling")

# Quiet installers, the same in every session; no Python downloads: the one running nox is used.
os.environ.update({"UV_NO_PROGRESS": "1", "UV_PYTHON_DOWNLOADS": "never", "PIP_DISABLE_PIP_VERSION_CHECK": "1"})


def constraint_file(line: str) -> Path:
    return CONSTRAINTS / f"airflow-{line}.txt"


def install(session: nox.Session, *args: str | os.PathLike[str]) -> None:
    """``uv pip install`` into the session's venv, its output into a log file; the log's end on failure.

    Bytecode is compiled as pip would: without it every Airflow process compiles Airflow again.
    """
    log = Path(session.virtualenv.location) / "install.log"
    with log.open("w", encoding="utf-8") as out:
        try:
            session.install("--compile-bytecode", *map(os.fspath, args), stdout=out, silent=False)
        except CommandFailed:
            out.flush()
            tail = log.read_text(encoding="utf-8", errors="replace").splitlines()[-30:]
            session.error(f"install failed; the end of {log}:\n    " + "\n    ".join(tail))
    session.log(f"installed; the installer's output is in {log}")


def line_install_args(line: str) -> list[str | os.PathLike[str]]:
    """``uv pip install`` arguments: the project (editable, rebuilt every time) with the line's extras and pins."""
    pins = constraint_file(line)
    extras = SMOKE_EXTRAS if line in SMOKE_LINES else FULL_EXTRAS
    return ["-c", pins, "--build-constraints", pins, "--reinstall-package", PROJECT_NAME, "-e", f".[{extras}]"]


def install_line(session: nox.Session, line: str) -> None:
    install(session, *line_install_args(line))


def airflow_home(session: nox.Session) -> dict[str, str]:
    """A fresh private AIRFLOW_HOME (SQLite, default settings), without Airflow's example DAGs."""
    home = Path(session.virtualenv.location) / "airflow-home"
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir()
    return {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        # Airflow's default, socket.getfqdn(), waits for reverse DNS on a machine without it.
        "AIRFLOW__CORE__HOSTNAME_CALLABLE": "socket.gethostname",
        "PYTHONUNBUFFERED": "1",
    }


def smoke_args(pytest_args: list[str]) -> list[str]:
    """``pytest_args`` limited to the smoke tests: ``-m smoke``, or ``-m "smoke and (EXPR)"`` given ``-m EXPR``."""
    rest: list[str] = []
    expr: str | None = None
    args = iter(pytest_args)
    for arg in args:
        if arg == "-m":
            expr = next(args, "")
        elif arg.startswith("-m") and not arg.startswith("--"):
            expr = arg[2:].lstrip("=")
        else:
            rest.append(arg)
    return ["-m", SMOKE_MARKER if not expr else f"{SMOKE_MARKER} and ({expr})", *rest]


def run_pytest(session: nox.Session, line: str, pytest_args: list[str]) -> None:
    install_line(session, line)
    cache = f"cache_dir={Path(session.virtualenv.location) / '.pytest_cache'}"
    # --durations: the slowest tests of every run, to keep the suite's time in view.
    session.run("python", "-m", "pytest", "-o", cache, "--durations=15", *pytest_args, env=airflow_home(session))


def register_tests(line: str) -> None:
    """Sessions ``tests-<line>`` (every test) for the full lines, ``smoke-<line>`` for the others."""
    smoke = line in SMOKE_LINES

    def tests(session: nox.Session) -> None:
        run_pytest(session, line, smoke_args(session.posargs) if smoke else session.posargs)

    kind = f"pytest -m {SMOKE_MARKER}" if smoke else "pytest, every test,"
    tests.__doc__ = f"{kind} on Airflow {AIRFLOW_VERSIONS[line]}."
    nox.session(name=f"{'smoke' if smoke else 'tests'}-{line}", allow_parallel=True, tags=["ci"])(tests)


for _line in FULL_LINES + SMOKE_LINES:
    register_tests(_line)


@nox.session(allow_parallel=True, tags=["ci"])
def lint(session: nox.Session) -> None:
    """Ruff (lint and format) on everything; mypy --strict on the package, typed against Airflow 3's Task SDK."""
    install_line(session, "3")
    session.run("ruff", "check", *LINT_DIRS)
    session.run("ruff", "format", "--check", *LINT_DIRS)
    session.run("mypy", "--cache-dir", str(Path(session.virtualenv.location) / ".mypy_cache"))


def build_docs(session: nox.Session, *mkdocs_args: str) -> None:
    install(session, "-c", CONSTRAINTS / "docs.txt", *DOCS_PACKAGES)
    # NO_MKDOCS_2_WARNING: Material's notice about MkDocs 2, printed on every build.
    session.run("mkdocs", *mkdocs_args, env={"NO_MKDOCS_2_WARNING": "1"})


@nox.session(allow_parallel=True, tags=["ci"])
def docs(session: nox.Session) -> None:
    """The docs site (mkdocs.yml, docs/) into site/; any warning (a broken link, a docstring) fails."""
    build_docs(session, "build", "--strict", "--quiet", "--site-dir", str(ROOT / "site"))


@nox.session(name="docs-serve", default=False)
def docs_serve(session: nox.Session) -> None:
    """The docs on http://127.0.0.1:8000, rebuilt on every change."""
    build_docs(session, "serve", "--strict", *session.posargs)


@nox.session(allow_parallel=True, tags=["ci"])
def package(session: nox.Session) -> None:
    """The sdist and the wheel, built offline with the pinned backend, then checked as a user gets them."""
    install(session, "-c", CONSTRAINTS / "package.txt", *PACKAGE_TOOLS)
    session.run("python", "dev/package_check.py")


@nox.session(default=False)
def demo(session: nox.Session) -> None:
    """The post-dbt example DAG in real Airflow 3, against the bundled Census emulator."""
    install_line(session, "3")
    session.run("python", "dev/demo.py", *session.posargs, env=airflow_home(session))


def side_venv(session: nox.Session, name: str, *packages: str | os.PathLike[str]) -> Path:
    """A second venv beside the session's, for a benchmark's other provider or Airflow line; its Python."""
    venv = Path(f"{session.virtualenv.location}-{name}")
    python = venv / "bin" / "python"
    if not python.exists():
        session.run("uv", "venv", "--quiet", "--python", sys.executable, str(venv))
    log = Path(session.virtualenv.location) / f"install-{name}.log"
    with log.open("w", encoding="utf-8") as out:
        # --python: nox points uv at the session's own venv (UV_PYTHON) for everything else.
        args = ["--python", str(python), "--compile-bytecode", *map(os.fspath, packages)]
        session.run("uv", "pip", "install", *args, stdout=out)
    return python


@nox.session(default=False)
def bench(session: nox.Session) -> None:
    """benchmarks/run.py: this provider on Airflow 3 and 2.11 beside the published 2.1 (figures, no pass/fail)."""
    install_line(session, "3")
    airflow3 = f"apache-airflow=={AIRFLOW_VERSIONS['3']}"
    official = side_venv(session, "official", "-c", constraint_file("3"), airflow3, OFFICIAL_PROVIDER)
    airflow2 = side_venv(session, "airflow-2", *line_install_args("2"))
    args = ["--official-python", str(official), "--airflow2-python", str(airflow2), *session.posargs]
    session.run("python", "benchmarks/run.py", *args, env=airflow_home(session))


@nox.session(default=False)
def lock(session: nox.Session) -> None:
    """Re-resolve constraints/airflow-<line>.txt with uv (the lines given after ``--``, or every line)."""
    lines = session.posargs or list(AIRFLOW_VERSIONS)
    unknown = sorted(set(lines) - set(AIRFLOW_VERSIONS))
    if unknown:
        session.error(f"no Airflow line {', '.join(unknown)}; the lines are {', '.join(AIRFLOW_VERSIONS)}")
    workdir = Path(session.create_tmp())
    for line in lines:
        text = locked_constraints(session, line, workdir)
        constraint_file(line).write_text(text)
        pins = sum(1 for row in text.splitlines() if row and not row.startswith("#"))
        session.log(f"wrote {constraint_file(line).relative_to(ROOT)} ({pins} pins)")


def locked_constraints(session: nox.Session, line: str, workdir: Path) -> str:
    """One line's constraint file: Airflow (as of its date), the project's extras, then the build backend."""
    version = AIRFLOW_VERSIONS[line]
    airflow = [f"apache-airflow=={version}", *LOCK_CAPS.get(line, [])]
    extras = SMOKE_EXTRAS if line in SMOKE_LINES else FULL_EXTRAS
    runtime, build = workdir / f"runtime-{line}.txt", workdir / f"build-{line}.txt"
    runtime.unlink(missing_ok=True)
    compile_ = ["uv", "pip", "compile", "--quiet", "--no-header", "--no-annotate", "--python", sys.executable]
    as_of = LOCK_AS_OF.get(line)
    if as_of:
        # Airflow alone as of its date; the next step keeps these pins where the project allows.
        airflow_only = workdir / f"airflow-{line}.in"
        airflow_only.write_text("\n".join(airflow) + "\n")
        session.run(*compile_, "--exclude-newer", f"{as_of}T00:00:00Z", "-o", str(runtime), str(airflow_only))
    project = workdir / f"project-{line}.in"
    project.write_text("\n".join([*airflow, f"-e {ROOT}[{extras}]"]) + "\n")
    session.run(*compile_, "--no-emit-package", PROJECT_NAME, "-o", str(runtime), str(project))
    requires = workdir / f"build-{line}.in"
    requires.write_text("\n".join(build_requires()) + "\n")
    session.run(*compile_, "-c", str(runtime), "-o", str(build), str(requires))
    pins = [row for row in runtime.read_text().splitlines() if row and not row.startswith(("#", "-e"))]
    runtime_names = {row.split("==")[0].lower() for row in pins}
    build_pins = [row for row in build.read_text().splitlines() if row.split("==")[0].lower() not in runtime_names]
    build_pins = [row for row in build_pins if "==" in row]
    return constraints_text(line, airflow, extras, as_of=as_of, pins=pins, build_pins=build_pins)


def build_requires() -> list[str]:
    import tomllib  # nox runs here on Python 3.11+ only for `lock`; 3.10 has no tomllib

    return list(tomllib.loads((ROOT / "pyproject.toml").read_text())["build-system"]["requires"])


def constraints_text(
    line: str, airflow: list[str], extras: str, *, as_of: str | None, pins: list[str], build_pins: list[str]
) -> str:
    quoted = " ".join(f'"{req}"' for req in airflow)
    py_ver = ".".join(map(str, sys.version_info[:2]))
    as_of_step = [f"#     uv pip compile --exclude-newer {as_of}T00:00:00Z   {quoted}"] if as_of else []
    header = [
        f"# Pinned environment for testing {PROJECT_NAME} on Apache Airflow {AIRFLOW_VERSIONS[line]}.",
        "#",
        f"# Generated by `python3 dev/run.py lock {line}` (nox -s lock): do not edit by hand, rerun it.",
        f"# It resolved, for Python {py_ver} against PyPI:",
        *as_of_step,
        f'#     uv pip compile {quoted} -e ".[{extras}]"{"   (keeping those pins where they fit)" if as_of else ""}',
        "# and then the build backend from [build-system] requires, against those pins.",
        "# The sessions install their venv with this file as both -c and --build-constraints.",
        f"# python: {py_ver}",
        "",
    ]
    tail = ["", "# build backend (the isolated build environment)", *sorted(build_pins, key=str.lower)]
    return "\n".join(header + sorted(pins, key=str.lower) + (tail if build_pins else [])) + "\n"
