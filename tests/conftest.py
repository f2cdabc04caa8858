"""Shared fixtures: small datasets in the real on-disk formats, generated here, and a CLI runner."""
from __future__ import annotations

import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

# One intra-op thread for torch (and numpy's BLAS) in every worker and every process the tests start (they
# inherit it): four xdist workers share two cores, and OpenMP threads spinning against each other cost more CPU
# than they save (a real tiny training: 25 s of CPU with two threads, 15 s with one; the suite is CPU-bound).
# Set before anything imports torch; a test that needs another count sets it itself.
for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

REPO = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent

# A run started in the background by a non-interactive shell inherits SIGINT ignored, and so would every process
# the tests start (an ignored signal survives exec): the tests that press Ctrl-C need it delivered.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


# Green means tested (issue 29): under CI=true a skipped test is a failure, so a missing dependency (Azurite,
# rsync, an SDK extra, root for `unshare`) cannot turn CI green with an area untested. Outside CI a skip stays
# a skip, with its one-line reason in the summary (-ra).
IN_CI = os.environ.get("CI", "").lower() == "true"


def _fail_skip_in_ci(report) -> None:
    if IN_CI and report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"skipped under CI=true, where everything must run: {reason}"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    _fail_skip_in_ci(outcome.get_result())


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    outcome = yield
    _fail_skip_in_ci(outcome.get_result())


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    """Under pytest-xdist's --dist loadgroup, a test that uses a module- or class-scoped fixture joins its
    module's group, so the fixture (a server, a trained run) is built on one worker once instead of on each;
    an explicit xdist_group mark (which may span files) wins. Runs before xdist's own hook, which turns the
    marks into scheduling groups."""
    for item in items:
        if item.get_closest_marker("xdist_group"):
            continue
        info = getattr(item, "_fixtureinfo", None)
        defs = info.name2fixturedefs.values() if info else ()
        if any(d[-1].scope in ("module", "class", "package") for d in defs if d):
            item.add_marker(pytest.mark.xdist_group(item.nodeid.split("::")[0]))
    _long_poles_first(items)


# The scheduling order under xdist (pyproject runs it with --no-loadscope-reorder, so a work unit — a group, or a
# test of none — is sent in the order of `items`): the suite ends when its last long test does, so the long
# poles start first (the slowest of benchmarks/suite_durations on CI, a minute or more each on a loaded
# machine), then groups by their number of tests (xdist's own reorder), then the single tests. START_LAST: what
# reads a build a long pole makes (the local sweep), started last instead of holding a worker on its lock.
START_FIRST = (
    "tests/bench/test_bench_ray.py",            # a Ray cluster and an MLflow server, a killed worker, a resume
    "tests/bench/test_sweep.py",                # the local sweep: golden trainings, two sessions
    "tests/skypilot/test_skypilot_launch.py",   # Ctrl-C while provisioning, behind a real API server
    "tests/core/test_budget.py",                # a sweep cell stopped by the budget at its second 20 s poll
    "tests/test_image_identity.py",             # a stand-in baseline, then six stand-in launches compared with it
    "tests/reproduce/test_reproduce.py",        # a study end to end (sweep, serve, load), a real tiny run
    "tests/azureml/test_azureml_endpoint.py",   # one group: four deployments, each serving a model
    "tests/test_trainer_ddp.py",                # two-rank DDP trainings
    "tests/bench/test_batch.py",                # batch inference against the trainer's test accuracy
    "tests/test_training.py",                   # real trainings: SIGTERM and resume, the presets
    "tests/bench/test_transfer.py",
    "tests/bench/test_compliance.py",
    "tests/local/test_local_launch.py",         # one group: the real launch and the stand-in launches
)
START_LAST = ("tests/test_report.py", "tests/test_report_browser.py::test_the_local_sweep_report_renders")


def _long_poles_first(items) -> None:
    def unit(item) -> str:
        mark = item.get_closest_marker("xdist_group")
        return (mark.args[0] if mark.args else mark.kwargs.get("name", "default")) if mark else item.nodeid

    size: dict[str, int] = {}
    for item in items:
        size[unit(item)] = size.get(unit(item), 0) + 1

    def rank(item) -> tuple:
        u = unit(item)
        first = next((i for i, p in enumerate(START_FIRST) if item.nodeid.startswith(p)), None)
        if u in START_LAST:
            return (3, 0, 0)
        if first is not None:
            return (0, first, 0)
        return (1, -size[u], 0) if size[u] > 1 else (2, 0, 0)

    items.sort(key=rank)  # stable: a group's tests, and the single tests, keep their collection order


class _XdistGroupsOnPytest9:
    """pytest-xdist 3.8 puts a test's group into its node id by rewriting `item._nodeid` ("…@group"), which
    pytest 9.2 no longer reads (`nodeid` is built from `item._id`): without this, --dist loadgroup groups
    nothing and a module's fixture is built on every worker. Carries xdist's rewrite over, after its hook."""

    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(self, items):
        from _pytest.nodeid import NodeId

        for item in items:
            rewritten = item.__dict__.get("_nodeid")
            if rewritten and rewritten != item.nodeid:
                item._id = NodeId.parse(rewritten)


def pytest_configure(config):
    if hasattr(config, "workerinput") and getattr(config.option, "loadgroup", False):
        config.pluginmanager.register(_XdistGroupsOnPytest9(), "xdist-groups-on-pytest9")


@pytest.fixture(autouse=True)
def _isolated_env(tmp_path_factory, monkeypatch):
    """Keep tests off the user's cache and MLflow store."""
    monkeypatch.setenv("PLATBENCH_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    for var in ("TRAINING_JOB_NAME", "SM_MODEL_DIR", "AIP_MODEL_DIR", "CLOUD_ML_JOB_ID", "AZUREML_RUN_ID",
                "PLATBENCH_PLATFORM", "PLATBENCH_OPT_ML"):
        monkeypatch.delenv(var, raising=False)


COLORS = {"red": (200, 40, 40), "green": (40, 190, 60), "blue": (50, 60, 210)}


def make_color_images(n: int, rgb: tuple[int, int, int], rng: np.random.Generator, size: int = 32) -> np.ndarray:
    """Class = dominant colour, plus noise and a random bright square: learnable in an epoch or two."""
    base = np.array(rgb, dtype=np.float64)
    imgs = base + rng.normal(0, 35, size=(n, size, size, 3))
    for img in imgs:
        y, x = rng.integers(0, size - 8, 2)
        img[y:y + 8, x:x + 8] += 60
    return np.clip(imgs, 0, 255).astype(np.uint8)


def write_folder_dataset(root: Path, train_per_class: int = 40, test_per_class: int = 12, seed: int = 0,
                         suffix: str = ".png") -> Path:
    rng = np.random.default_rng(seed)
    for split, n in (("train", train_per_class), ("test", test_per_class)):
        for name, rgb in COLORS.items():
            d = root / split / name
            d.mkdir(parents=True, exist_ok=True)
            for i, img in enumerate(make_color_images(n, rgb, rng)):
                Image.fromarray(img).save(d / f"{i:04d}{suffix}")
    return root


def write_cifar_batches(root: Path, per_batch: int = 20, seed: int = 0) -> Path:
    """The CIFAR-10 python format: pickled dicts of b'data' (N×3072 uint8, channel-major) and b'labels'."""
    rng = np.random.default_rng(seed)
    d = root / "cifar-10-batches-py"
    d.mkdir(parents=True)
    names = [f"class{i}" for i in range(10)]
    with (d / "batches.meta").open("wb") as f:
        pickle.dump({b"label_names": [n.encode() for n in names], b"num_cases_per_batch": per_batch}, f)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        labels = [int(x) for x in rng.permutation(np.arange(per_batch) % 10)]  # every class present
        data = rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8)
        with (d / name).open("wb") as f:
            pickle.dump({b"data": data, b"labels": labels, b"batch_label": name.encode()}, f)
    return root


@pytest.fixture(scope="session")
def color_data(tmp_path_factory) -> Path:
    return write_folder_dataset(tmp_path_factory.mktemp("colors") / "colors")


@pytest.fixture(scope="session")
def digits_data(tmp_path_factory) -> Path:
    from trainer.data.prepare import digits, write_folder

    classes, splits = digits()
    return write_folder(tmp_path_factory.mktemp("digits") / "digits", classes, splits)


def wait_for(predicate, timeout: float, what: str, interval: float = 0.5):
    """predicate()'s first truthy value, polled every `interval` s; an AssertionError after `timeout` s."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def run_cmd(args: list[str], cwd: Path | None = None, env: dict | None = None, timeout: float = 300,
            input: str | None = None) -> subprocess.CompletedProcess:
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(args, cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout,
                          input=input)


def platbench(*args: str, cwd: Path, env: dict | None = None, timeout: float = 900) -> subprocess.CompletedProcess:
    return run_cmd([str(VENV_BIN / "platbench"), *args], cwd=cwd, env=env, timeout=timeout)


def assert_one_line_error(proc: subprocess.CompletedProcess) -> None:
    assert proc.returncode != 0, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "error" in lines[0], proc.stderr
