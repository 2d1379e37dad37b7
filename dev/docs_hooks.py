"""MkDocs hooks for the docs site: pages that show a file kept outside ``docs/``.

A page holding the line ``<!-- include: CHANGELOG.md -->`` shows that file (a path from the
repo root) in its place. The file's links are written for GitHub, relative to the file itself;
here they are made relative to the page: a link into ``docs/`` leads to that page of the site,
a file with a page of its own (``CHANGELOG.md``, ``benchmarks/README.md``) to that page, and
any other file of the repo (an example DAG, say) becomes its path in code, since the site does
not publish it. One copy of the text, no symlink, and ``mkdocs build --strict`` checks the links.

It also quiets one griffe warning that is wrong here: the operators and the sensor document
their waiting parameters (``timeout``, ``on_skipped``, ...), which their ``__init__`` takes
through ``**kwargs`` and hands to a private base class; griffe, seeing only ``**kwargs``, would
call each of them unknown. Every other docstring warning still fails the strict build.

Loaded from mkdocs.yml (``hooks:``), in the docs venv only.
"""

from __future__ import annotations

import logging
import posixpath
import re
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
INCLUDE = re.compile(r"^<!-- include: (\S+) -->$", re.M)
LINK = re.compile(r"(?<!!)\[([^\]]+)\]\(([^)\s]+)\)")
# Repo files that have a page of their own (repo path -> page, from docs/).
PAGES = {"CHANGELOG.md": "changelog.md", "benchmarks/README.md": "benchmarks.md", "README.md": "index.md"}


# Modules whose classes document parameters their __init__ takes through **kwargs.
KWARGS_DOCUMENTED = ("airflow_provider_census/operators/census.py", "airflow_provider_census/sensors/census.py")
KWARGS_WARNING = re.compile(
    r"Parameter '\w+' does not appear in the function signature|No matching parameter for '\w+'"
)


class _KwargsParameters(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        return not (KWARGS_WARNING.search(text) and any(path in text for path in KWARGS_DOCUMENTED))


def on_startup(**kwargs: Any) -> None:
    logging.getLogger("mkdocs.plugins.griffe").addFilter(_KwargsParameters())


def on_page_markdown(markdown: str, page: Any, **kwargs: Any) -> str:
    page_dir = posixpath.dirname(page.file.src_uri)
    return INCLUDE.sub(lambda m: _included(m.group(1), page_dir), markdown)


def on_config(config: Any, **kwargs: Any) -> Any:
    """Rebuild on `mkdocs serve` when an included file changes."""
    for path in sorted(PAGES):
        if (ROOT / path).exists() and str(ROOT / path) not in config["watch"]:
            config["watch"].append(str(ROOT / path))
    return config


def _included(path: str, page_dir: str) -> str:
    text = (ROOT / path).read_text(encoding="utf-8")
    file_dir = posixpath.dirname(path)
    return LINK.sub(lambda m: _link(m.group(1), m.group(2), file_dir, page_dir), text)


def _link(label: str, target: str, file_dir: str, page_dir: str) -> str:
    if re.match(r"^[a-z][a-z0-9+.-]*:", target) or target.startswith(("#", "/")):
        return f"[{label}]({target})"
    where, hash_, anchor = target.partition("#")
    repo_path = posixpath.normpath(posixpath.join(file_dir, where))
    if repo_path in PAGES:
        doc = PAGES[repo_path]
    elif repo_path.startswith("docs/"):
        doc = repo_path[len("docs/") :]
    else:
        return label if label.startswith("`") else f"`{label}`"
    return f"[{label}]({posixpath.relpath(doc, page_dir or '.')}{hash_}{anchor})"
