"""Build the sdist and the wheel and check what a user would download: ``dev/run.py test`` runs it.

Run by the nox session ``package``, in its venv (pinned by ``constraints/package.txt``). It builds
offline with the pinned backend (``python -m build --no-isolation``) into a temporary folder,
runs ``twine check --strict`` on both files, and checks that:

- the wheel holds the package with ``py.typed`` and nothing else (no tests, no example DAGs,
  no dev scripts), its provider entry point and the license text;
- the metadata has the project URLs and a ``Requires-Python`` (hatchling itself refuses
  classifiers PyPI does not know, since ``trove-classifiers`` is installed beside it);
- the sdist holds the sources, the tests, the example DAGs and the docs (their code blocks are
  tests), so the suite runs from it.

Exit status 1 with one line per problem, 0 when the distributions are fit to upload.
"""

from __future__ import annotations

import subprocess
import sys
import tarfile
import tempfile
import zipfile
from email.parser import Parser
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "airflow_provider_census"
WANTED_URLS = ("Homepage", "Documentation", "Changelog", "Issues")


def build(out: Path) -> tuple[Path, Path]:
    """Both distributions, built quietly; a failed build prints the end of its output and exits."""
    done = subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", "--sdist", "--wheel", "--outdir", str(out), str(ROOT)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        print(f"build failed:\n{(done.stdout + done.stderr)[-3000:]}")
        raise SystemExit(1)
    (wheel,) = out.glob("*.whl")
    (sdist,) = out.glob("*.tar.gz")
    return wheel, sdist


def wheel_problems(wheel: Path) -> list[str]:
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        (metadata_name,) = [name for name in names if name.endswith(".dist-info/METADATA")]
        metadata = Parser().parsestr(archive.read(metadata_name).decode())
        (entry_points_name,) = [name for name in names if name.endswith(".dist-info/entry_points.txt")]
        entry_points = archive.read(entry_points_name).decode()
    problems = [f"wheel: {name} is not part of the package" for name in names if not _belongs_in_wheel(name)]
    if f"{PACKAGE}/py.typed" not in names:
        problems.append(f"wheel: no {PACKAGE}/py.typed, so type checkers ignore the package's types")
    if not any(name.endswith(".dist-info/licenses/LICENSE") for name in names):
        problems.append("wheel: no LICENSE under .dist-info/licenses, though the metadata names Apache-2.0")
    if "[apache_airflow_provider]" not in entry_points:
        problems.append("wheel: no apache_airflow_provider entry point, so Airflow does not find the provider")
    if "pytest11" in entry_points:
        problems.append("wheel: a pytest11 entry point loads the plugin into every user's pytest run")
    return problems + metadata_problems(metadata)


def _belongs_in_wheel(name: str) -> bool:
    return name.startswith(f"{PACKAGE}/") or name.split("/", 1)[0].endswith(".dist-info")


def metadata_problems(metadata: object) -> list[str]:
    get_all = metadata.get_all  # type: ignore[attr-defined]
    urls = {url.split(",", 1)[0].strip() for url in get_all("Project-URL") or []}
    problems = [f"metadata: no Project-URL {label!r}" for label in WANTED_URLS if label not in urls]
    if not metadata.get("Requires-Python"):  # type: ignore[attr-defined]
        problems.append("metadata: no Requires-Python")
    return problems


def sdist_problems(sdist: Path) -> list[str]:
    with tarfile.open(sdist) as archive:
        top_levels = {name.split("/", 2)[1] for name in archive.getnames() if name.count("/") >= 1}
    wanted = {PACKAGE, "tests", "example_dags", "docs", "README.md", "pyproject.toml", "LICENSE"}
    return [f"sdist: no {name}" for name in sorted(wanted - top_levels)]


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="census-dist-") as folder:
        wheel, sdist = build(Path(folder))
        twine = subprocess.run(
            [sys.executable, "-m", "twine", "check", "--strict", str(wheel), str(sdist)],
            capture_output=True,
            text=True,
            check=False,
        )
        problems = [] if twine.returncode == 0 else [f"twine check: {twine.stdout.strip()} {twine.stderr.strip()}"]
        problems += wheel_problems(wheel) + sdist_problems(sdist)
        for problem in problems:
            print(problem)
        if not problems:
            print(f"{wheel.name} and {sdist.name}: twine check passed, contents and metadata as they should be")
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
