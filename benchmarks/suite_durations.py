"""Where the suite's time goes: the slowest tests and the time per folder, from pytest's JUnit XML.

    .venv/bin/pytest -q --junitxml=/tmp/suite.xml        # .ci/run writes one on every run
    .venv/bin/python -m benchmarks.suite_durations /tmp/suite.xml [--top 30]

Per-test seconds are what pytest measured for the test (setup + call + teardown). Under pytest-xdist they add
up to more than the wall time (workers run side by side): the folder totals say where the work is, the
wall time is the sum the report gives on its last line.
"""
from __future__ import annotations

import argparse
import sys
import xml.etree.ElementTree as ET
from collections import defaultdict
from pathlib import Path


def read(path: Path) -> list[tuple[str, float, str]]:
    """(test id, seconds, outcome) for every test case in the report."""
    cases = []
    for case in ET.parse(path).getroot().iter("testcase"):
        outcome = "passed"
        for tag in ("failure", "error", "skipped"):
            if case.find(tag) is not None:
                outcome = tag
        test_id = f"{case.get('classname', '')}::{case.get('name', '')}"
        cases.append((test_id, float(case.get("time") or 0), outcome))
    return cases


def folder(test_id: str) -> str:
    """tests.azureml.test_azureml_train.TestX::name -> tests/azureml; tests.test_report::x -> tests (top level)."""
    parts = test_id.split("::")[0].split(".")
    module_at = next((i for i, p in enumerate(parts) if p.startswith("test_")), len(parts))
    return "/".join(parts[:module_at]) or "?"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("junit_xml", type=Path)
    ap.add_argument("--top", type=int, default=30)
    args = ap.parse_args(argv)
    if not args.junit_xml.is_file():
        print(f"error: no JUnit XML at {args.junit_xml} (pytest --junitxml=PATH writes one)", file=sys.stderr)
        return 2
    cases = read(args.junit_xml)
    total = sum(s for _, s, _ in cases)
    print(f"{len(cases)} tests, {total:.0f} s of test time in all")
    print(f"\nslowest {args.top}:")
    for test_id, seconds, outcome in sorted(cases, key=lambda c: -c[1])[:args.top]:
        print(f"  {seconds:7.1f} s  {test_id}" + ("" if outcome == "passed" else f"  [{outcome}]"))
    per_folder: dict[str, list[float]] = defaultdict(list)
    for test_id, seconds, _ in cases:
        per_folder[folder(test_id)].append(seconds)
    print("\nper folder (test time, tests, share):")
    for name, times in sorted(per_folder.items(), key=lambda kv: -sum(kv[1])):
        print(f"  {sum(times):7.0f} s  {len(times):4d}  {sum(times) / total:5.1%}  {name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
