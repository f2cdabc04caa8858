"""Issue 28: every wrong input a newcomer types is refused before anything starts — one line on stderr, exit 2,
no traceback, and nothing left behind (no run folder, no MLflow store or run, no output file).

In-process (tests/stand_in/cli.py's platbench_here, tests/_cli.py's trainer_here): a refusal needs no
subprocess, only the command's own checks. The subprocess form of each command is tested in its area."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from _cli import trainer_here
from conftest import assert_one_line_error
from stand_in.cli import platbench_here

DATA = "{data}"  # the bundled digits (tests/conftest.py's digits_data): 10 classes, 143 training images or more each

# (id, arguments, a word the line must hold). `afile` is a file in the working folder, `bad.db` a file that is
# not a database; {data} and {run} are filled in by the test.
WRONG = [
    # launch
    ("launch-unknown-platform", ["launch", "nosuch", "--data", DATA], "nosuch"),
    ("launch-missing-data", ["launch", "local", "--data", "nodata"], "nodata"),
    ("launch-unknown-model", ["launch", "local", "--data", DATA, "--model", "huge"], "huge"),
    ("launch-out-is-a-file", ["launch", "local", "--data", DATA, "--out", "afile"], "afile"),
    ("launch-out-under-a-file", ["launch", "local", "--data", DATA, "--out", "afile/run"], "afile"),
    ("launch-dry-run-out-is-a-file", ["launch", "local", "--data", DATA, "--out", "afile", "--dry-run"], "afile"),
    ("launch-negative-lr", ["launch", "local", "--data", DATA, "--hp", "lr=-1"], "lr"),
    ("launch-zero-lr", ["launch", "local", "--data", DATA, "--hp", "lr=0"], "lr"),
    ("launch-lr-not-a-number", ["launch", "local", "--data", DATA, "--hp", "lr=fast"], "lr"),
    ("launch-zero-batch-size", ["launch", "local", "--data", DATA, "--hp", "batch_size=0"], "batch_size"),
    ("launch-zero-epochs-hp", ["launch", "local", "--data", DATA, "--hp", "epochs=0"], "epochs"),
    ("launch-momentum-above-one", ["launch", "local", "--data", DATA, "--hp", "momentum=1.5"], "momentum"),
    ("launch-negative-weight-decay", ["launch", "local", "--data", DATA, "--hp", "weight_decay=-0.1"], "weight_decay"),
    ("launch-label-smoothing-one", ["launch", "local", "--data", DATA, "--hp", "label_smoothing=1"], "label_smoothing"),
    ("launch-warmup-above-one", ["launch", "local", "--data", DATA, "--hp", "warmup_fraction=2"], "warmup_fraction"),
    ("launch-tta-unknown", ["launch", "local", "--data", DATA, "--hp", "tta=7"], "tta"),
    ("launch-negative-translate", ["launch", "local", "--data", DATA, "--hp", "translate=-1"], "translate"),
    ("launch-zero-eval-batch", ["launch", "local", "--data", DATA, "--hp", "eval_batch_size=0"], "eval_batch_size"),
    ("launch-negative-min-steps", ["launch", "local", "--data", DATA, "--hp", "min_steps=-5"], "min_steps"),
    ("launch-unknown-hp", ["launch", "local", "--data", DATA, "--hp", "speed=11"], "speed"),
    ("launch-hp-without-value", ["launch", "local", "--data", DATA, "--hp", "lr"], "lr"),
    ("launch-per-class-above-data", ["launch", "local", "--data", DATA, "--per-class", "500"], "500"),
    ("launch-per-class-one", ["launch", "local", "--data", DATA, "--per-class", "1"], "--per-class"),
    ("launch-zero-epochs", ["launch", "local", "--data", DATA, "--epochs", "0"], "--epochs"),
    ("launch-target-above-one", ["launch", "local", "--data", DATA, "--target-accuracy", "2"], "--target-accuracy"),
    ("launch-local-set", ["launch", "local", "--data", DATA, "--set", "region=x"], "--set"),
    ("launch-unknown-set-key", ["launch", "vertex", "--data", DATA, "--set", "colour=red", "--dry-run"], "bucket"),
    ("launch-cloud-negative-lr", ["launch", "vertex", "--data", DATA, "--hp", "lr=-1", "--dry-run"], "lr=-1.0"),
    ("sweep-cloud-negative-lr", ["sweep", "--data", DATA, "-p", "vertex", "--hp", "lr=-1", "--dry-run"], "lr=-1.0"),
    ("launch-local-nodes", ["launch", "local", "--data", DATA, "--nodes", "2"], "--nodes"),
    ("launch-unknown-option", ["launch", "local", "--data", DATA, "--fast"], "--fast"),
    ("launch-no-data", ["launch", "local"], "--data"),
    ("launch-unknown-baseline", ["launch", "local", "--data", DATA, "--baseline", "abc"], "abc"),
    ("launch-corrupt-store", ["launch", "local", "--data", DATA], "bad.db"),
    # prices
    ("prices-unknown-platform", ["prices", "refresh", "nosuch"], "nosuch"),
    # data prepare
    ("data-unknown-source", ["data", "prepare", "mnist", "--out", "d"], "mnist"),
    ("data-out-is-a-file", ["data", "prepare", "digits", "--out", "afile"], "afile"),
    ("data-out-under-a-file", ["data", "prepare", "digits", "--out", "afile/digits"], "afile"),
    ("data-cifar-missing-source", ["data", "prepare", "cifar10", "--out", "d", "--source", "nobatches"], "nobatches"),
    # runs
    ("runs-unknown-kind", ["runs", "--kind", "nosuch"], "nosuch"),
    ("runs-zero-limit", ["runs", "--limit", "0"], "--limit"),
    ("runs-corrupt-store", ["runs"], "bad.db"),
    # check
    ("check-unknown-run", ["check", "nosuchrun"], "nosuchrun"),
    ("check-corrupt-store", ["check", "abc123"], "bad.db"),
    # report
    ("report-out-is-a-file", ["report", "--out", "afile"], "afile"),
    ("report-corrupt-store", ["report", "--out", "rep"], "bad.db"),
    # load, predict, endpoint, transfer
    ("load-unknown-platform", ["load", "nosuch:endpoint", "--no-track"], "nosuch"),
    ("load-bad-format", ["load", "http://127.0.0.1:9/", "--format", "xml", "--no-track"], "xml"),
    ("load-out-under-a-file", ["load", "http://127.0.0.1:9/", "--out", "afile/load.json", "--no-track"], "afile"),
    ("predict-out-under-a-file", ["predict", DATA, "--model-dir", "{run}", "--out", "afile/p.jsonl", "--no-track"],
     "afile"),
    ("predict-missing-folder", ["predict", "nofolder", "--model-dir", "nomodel", "--no-track"], "no"),
    ("predict-no-model", ["predict", DATA, "--no-track"], "--model-dir"),
    ("endpoint-unknown-platform", ["endpoint", "nosuch", "--dry-run"], "nosuch"),
    ("endpoint-negative-budget", ["endpoint", "sagemaker", "--dry-run", "--max-usd", "-1"], "--max-usd"),
    ("endpoint-budget-not-a-number", ["endpoint", "sagemaker", "--max-usd", "lots"], "--max-usd"),
    ("endpoint-unpriced-budget", ["endpoint", "sagemaker", "--dry-run", "--set", "region=eu-west-1", "--max-usd", "5"],
     "no price"),
    ("transfer-unknown-platform", ["transfer", "nosuch", "--data", DATA, "--dry-run"], "nosuch"),
    # sweep
    ("sweep-missing-data", ["sweep", "--data", "nodata", "--dry-run"], "nodata"),
    ("sweep-unknown-platform", ["sweep", "--data", DATA, "--platform", "nosuch", "--dry-run"], "nosuch"),
    ("sweep-unknown-model", ["sweep", "--data", DATA, "--model", "huge", "--dry-run"], "huge"),
    ("sweep-per-class-not-a-number", ["sweep", "--data", DATA, "--per-class", "lots", "--dry-run"], "lots"),
    ("sweep-negative-lr", ["sweep", "--data", DATA, "--hp", "lr=-1", "--dry-run"], "lr"),
    # serve
    ("serve-missing-model", ["serve", "nomodel"], "nomodel"),
    ("serve-bad-port", ["serve", "{run}", "--port", "http"], "--port"),
    ("serve-bad-runtime", ["serve", "{run}", "--runtime", "tensorrt"], "torch or onnx"),
    # reproduce
    ("reproduce-unknown-study", ["reproduce", "nostudy"], "nostudy"),
    ("reproduce-missing-data", ["reproduce", "nyckel", "--data", "nodata"], "nodata"),
    ("reproduce-unknown-platform", ["reproduce", "nyckel", "--platform", "nosuch", "--dry-run"], "nosuch"),
    ("reproduce-out-is-a-file", ["reproduce", "nyckel", "--out", "afile"], "afile"),
    ("reproduce-negative-budget", ["reproduce", "nyckel", "--max-usd", "-1"], "--max-usd"),
    # scenario, image
    ("scenario-validate-missing-root", ["scenario", "validate", "--root", "noroot"], "noroot"),
    ("unknown-command", ["serv"], "serv"),
]


def _tree(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): (p.stat().st_size if p.is_file() else -1) for p in root.rglob("*")}


@pytest.fixture(scope="module")
def a_run(tmp_path_factory) -> Path:
    """A folder that looks like a run's (model/ with a card) for refusals that read no weights."""
    run = tmp_path_factory.mktemp("run")
    (run / "model").mkdir()
    return run


@pytest.mark.parametrize("case,args,word", WRONG, ids=[w[0] for w in WRONG])
def test_a_wrong_input_is_one_line_exit_2_and_leaves_nothing(tmp_path, digits_data, a_run, case, args, word):
    (tmp_path / "afile").write_text("a file, not a folder\n")
    env = {}
    if case.endswith("corrupt-store"):
        (tmp_path / "bad.db").write_text("not a database\n")
        env["MLFLOW_TRACKING_URI"] = "sqlite:///bad.db"
    before = _tree(tmp_path)
    args = [a.format(data=digits_data, run=a_run) for a in args]
    proc = platbench_here(*args, cwd=tmp_path, env=env)
    assert_one_line_error(proc)
    assert proc.returncode == 2, proc.stderr
    assert word in proc.stderr, proc.stderr
    assert _tree(tmp_path) == before, "left behind: " + ", ".join(sorted(set(_tree(tmp_path)) - set(before)))


TRAINER_WRONG = [
    ("negative-lr", ["--lr", "-1"], "lr"),
    ("zero-batch-size", ["--batch-size", "0"], "batch_size"),
    ("tta-unknown", ["--tta", "5"], "tta"),
    ("per-class-above-data", ["--per-class", "500"], "500"),
]


@pytest.mark.parametrize("case,flags,word", TRAINER_WRONG, ids=[w[0] for w in TRAINER_WRONG])
def test_the_trainer_refuses_before_its_output_folder_exists(tmp_path, digits_data, case, flags, word):
    out = tmp_path / "out"
    proc = trainer_here("train", "--data", str(digits_data), "--out", str(out), "--device", "cpu", *flags)
    assert_one_line_error(proc)
    assert proc.returncode == 2 and word in proc.stderr, proc.stderr
    assert not out.exists()


def test_the_table_covers_every_command():
    import typer.main

    from platforms.cli import app

    top = set(typer.main.get_command(app).commands)
    tried = {args[0] for _, args, _ in WRONG}
    assert top - tried <= {"platforms", "image"}, top - tried  # platforms takes no input; image: tests/image_cli


def test_no_traceback_for_a_corrupt_store_env_on_dry_run(tmp_path, digits_data):
    """A dry run reads no store: a corrupt one does not stop it."""
    (tmp_path / "bad.db").write_text("not a database\n")
    proc = platbench_here("launch", "local", "--data", str(digits_data), "--dry-run", cwd=tmp_path,
                          env={"MLFLOW_TRACKING_URI": "sqlite:///bad.db"})
    assert proc.returncode == 0, proc.stderr
    assert os.listdir(tmp_path) == ["bad.db"]
