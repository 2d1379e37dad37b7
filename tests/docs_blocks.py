"""The Python code blocks of the README and the docs, and what each one is, for tests/test_docs_code_blocks.py.

A block is a fenced ```` ```python ```` (or ```` ```py ````) block. What it is decides how it runs:

- a **fragment**, marked by the HTML comment ``<!-- docs-test: fragment: why -->`` on the line
  before it (an excerpt of a module, a continuation of the block above): only compiled;
- a **system** block, marked ``<!-- docs-test: system: which test -->``: DAGs that need more than
  the emulator (a warehouse, dbt), compiled here and run by that system test in a real deployment;
- a **DAG file**, one that calls ``DAG(...)``: loaded as Airflow loads DAG files, each of its
  DAGs run with ``dag.test()``;
- **pytest tests**, one that defines ``test_*`` functions: each called with the fixtures it names;
- a **script**, anything else: run as it is.

The marker is an HTML comment so that the rendered page does not show it. Any other
``docs-test`` comment, or a marker that is not right before a block, is an error: a typo must
not make a block skip its run.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FENCE = re.compile(r"^```(?:python|py)[ \t]*\n(?P<code>.*?)^```[ \t]*$", re.DOTALL | re.MULTILINE)
MARKER = re.compile(r"^<!--\s*docs-test:\s*(?P<kind>[\w-]+)\s*(?::\s*(?P<why>.*?))?\s*-->[ \t]*$", re.MULTILINE)
"""A marker is a line of its own (a mention of one inside a sentence is not)."""
FRAGMENT = "fragment"
SYSTEM = "system"
MARKED_KINDS = (FRAGMENT, SYSTEM)


@dataclass(frozen=True)
class CodeBlock:
    """One code block: where it is (its first code line), its code, and what it is."""

    path: Path
    line: int
    code: str
    kind: str

    @property
    def name(self) -> str:
        """``docs/how-to/hook.md:8``, the test's id and where to look."""
        return f"{self.path.relative_to(ROOT) if self.path.is_relative_to(ROOT) else self.path.name}:{self.line}"

    @property
    def imports_airflow_sdk(self) -> bool:
        """Written for Airflow 3 (``from airflow.sdk import ...``), which Airflow 2.11 cannot import."""
        return re.search(r"^\s*(from|import) airflow\.sdk\b", self.code, re.MULTILINE) is not None


def documentation_files() -> list[Path]:
    """Every Markdown file whose code blocks users read: the README and the docs site's pages."""
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def code_blocks(path: Path) -> list[CodeBlock]:
    """The Python code blocks of a Markdown file, in order, each with its kind; a stray marker raises ValueError."""
    text = path.read_text(encoding="utf-8")
    blocks, used_markers = [], set()
    for fence in FENCE.finditer(text):
        marker = _marker_before(text, fence.start())
        if marker is not None:
            used_markers.add(marker.start())
        code = fence.group("code")
        line = text.count("\n", 0, fence.start("code")) + 1
        blocks.append(CodeBlock(path, line, code, marker.group("kind") if marker is not None else _kind_of(code)))
    for marker in MARKER.finditer(text):
        if marker.start() not in used_markers or marker.group("kind") not in MARKED_KINDS or not marker.group("why"):
            line = text.count("\n", 0, marker.start()) + 1
            raise ValueError(
                f"{path}:{line}: {marker.group(0)!r} is not a marker the tests know: write "
                f"'<!-- docs-test: {FRAGMENT}: why -->' (or {SYSTEM}: which test) on the line right before "
                "a ```python block"
            )
    return blocks


def _marker_before(text: str, fence_start: int) -> re.Match[str] | None:
    """The marker on the line right before a fence (whose offset in the text it keeps), if any."""
    previous_line_start = text.rfind("\n", 0, max(fence_start - 1, 0)) + 1
    match = MARKER.fullmatch(text, previous_line_start, fence_start - 1) if fence_start else None
    return match


def _kind_of(code: str) -> str:
    """``dag``, ``pytest`` or ``script``, from the code's syntax (code that does not parse is a script: it fails)."""
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return "script"
    calls = {_called_name(node.func) for node in ast.walk(tree) if isinstance(node, ast.Call)}
    if "DAG" in calls:
        return "dag"
    if any(isinstance(node, ast.FunctionDef) and node.name.startswith("test_") for node in tree.body):
        return "pytest"
    return "script"


def _called_name(func: ast.expr) -> str | None:
    if isinstance(func, ast.Name):
        return func.id
    return func.attr if isinstance(func, ast.Attribute) else None
