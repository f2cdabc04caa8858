"""The engine tests (test_image*.py) run only under scripts/image-test, which starts a Docker engine, builds the
images and sets PLATBENCH_IT_IMAGE (tag), PLATBENCH_IT_DIGEST (its ID), PLATBENCH_IT_WORK (scratch space,
readable by the image's user), PLATBENCH_IT_SMALL_* (the small image for the registry tests) and DOCKER_HOST.
Without them those files are not even collected, so the fast suite (`pytest -q`) never depends on an engine;
test_script_exit.py (the script's own exit status, no engine) runs everywhere.

Nothing here skips: a test that cannot run fails (under CI=true tests/conftest.py also turns any skip into a
failure, issue 29). Under scripts/image-test the summary ends with each test's seconds, setup and teardown
included (a module fixture, e.g. the shared training run, counts where it is first used), in the order run:
docs/benchmarks.md quotes them."""
from __future__ import annotations

import os

IN_IMAGE_TEST = bool(os.environ.get("PLATBENCH_IT_IMAGE"))
collect_ignore_glob = [] if IN_IMAGE_TEST else ["test_image*.py"]

_seconds: dict[str, float] = {}


def pytest_runtest_logreport(report):
    if IN_IMAGE_TEST and "image/test_image" in report.nodeid:
        _seconds[report.nodeid] = _seconds.get(report.nodeid, 0.0) + report.duration


def pytest_terminal_summary(terminalreporter):
    if not _seconds:
        return
    tr = terminalreporter
    tr.write_sep("-", "tests/image: seconds per test (setup + call + teardown), in the order run")
    for nodeid, seconds in _seconds.items():
        tr.write_line(f"{seconds:7.1f} s  {nodeid.split('/')[-1]}")
    tr.write_line(f"{sum(_seconds.values()):7.1f} s  in all, {len(_seconds)} tests")
