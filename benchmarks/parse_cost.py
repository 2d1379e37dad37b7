"""DAG-parse cost: what importing the operator, sensor and hook adds to Airflow's own import.

Run with the Python of one Airflow line's virtualenv. It starts ``--runs`` fresh interpreters
(plus one not counted, which writes the Airflow home's config and warms the disk cache); each
imports Airflow's base (``airflow.sdk`` on Airflow 3, ``airflow`` on 2.x), then this provider's
three modules, timing both and listing which heavy modules the provider's imports pulled in.

Where that base does not load Airflow's operator class (``import airflow`` on 2.x), the
provider's share includes loading it, which every DAG file pays anyway through
``from airflow import DAG``. So on such a line the same is measured again with that import in
the base, to show what the provider itself adds to a real DAG file. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from importlib.metadata import version

PROVIDER_MODULES = (
    "airflow_provider_census.operators.census",
    "airflow_provider_census.sensors.census",
    "airflow_provider_census.hooks.census",
)
HEAVY_MODULES = ("aiohttp", "tenacity", "airflow_provider_census.testing")
OPERATOR_CLASS_MODULES = ("airflow.sdk.bases.operator", "airflow.models.baseoperator")

CHILD = """
import importlib, json, sys, time
base, ours, heavy, operator = sys.argv[1], *(arg.split(",") for arg in sys.argv[2:5])
t0 = time.perf_counter()
for spec in base.split(","):
    module, _, attribute = spec.partition(":")
    imported = importlib.import_module(module)
    if attribute:
        getattr(imported, attribute)
t1 = time.perf_counter()
before = set(sys.modules)
for name in ours:
    importlib.import_module(name)
t2 = time.perf_counter()
print(json.dumps({
    "base": t1 - t0,
    "ours": t2 - t1,
    "heavy_in_base": [m for m in heavy if m in before],
    "heavy_added": [m for m in heavy if m in sys.modules and m not in before],
    "operator_class_in_base": any(m in before for m in operator),
}))
"""


def base_imports() -> tuple[str, str]:
    """What a DAG file imports first on this Airflow line, and the same with ``DAG`` (``module:attribute``)."""
    base = "airflow.sdk" if int(version("apache-airflow").split(".")[0]) >= 3 else "airflow"
    return base, f"{base}:DAG"


def one_interpreter(base: str) -> dict[str, object]:
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            CHILD,
            base,
            *(",".join(names) for names in (PROVIDER_MODULES, HEAVY_MODULES, OPERATOR_CLASS_MODULES)),
        ],
        check=True,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
    )
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def medians(base: str, runs: int) -> dict[str, object]:
    """The median base and provider import times over ``runs`` fresh interpreters."""
    samples = [one_interpreter(base) for _ in range(runs)]
    base_median = statistics.median(float(s["base"]) for s in samples)  # type: ignore[arg-type]
    ours_median = statistics.median(float(s["ours"]) for s in samples)  # type: ignore[arg-type]
    return {
        "base": base,
        "base_median_s": base_median,
        "ours_median_s": ours_median,
        "share": ours_median / base_median,
        "heavy_added": sorted({m for s in samples for m in s["heavy_added"]}),  # type: ignore[attr-defined]
        "heavy_in_base": sorted({m for s in samples for m in s["heavy_in_base"]}),  # type: ignore[attr-defined]
    }


def measure(runs: int) -> dict[str, object]:
    base, with_dag = base_imports()
    warm_up = one_interpreter(base)  # not counted: first-run config writing and cold caches
    result: dict[str, object] = {"airflow": version("apache-airflow"), "runs": runs, **medians(base, runs)}
    if not warm_up["operator_class_in_base"]:
        result["with_dag"] = medians(with_dag, runs)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15, help="fresh interpreters to take the median over")
    args = parser.parse_args()
    print(json.dumps(measure(args.runs)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
