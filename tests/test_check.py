"""`python -m trainer check`: real runs made here pass; hand-tampered copies fail with one line per problem;
bad input is one line and exit 2; the known digits fingerprint is recomputed from the real prepare code."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Callable

import lightning as L
import pytest
from _cli import trainer_here
from _runs import digits_run as shared_digits_run
from conftest import assert_one_line_error, run_cmd

from trainer import check
from trainer.check import KNOWN_DATASETS, check_run_dir, run_checks
from trainer.data.layout import fingerprint
from trainer.results import read_metrics, read_results
from trainer.train import EXIT_PREEMPTED, TrainConfig, run


def train(data: Path, out: Path, callbacks=None, **kw):
    cfg = TrainConfig(data_dir=data, output_dir=out, model_dir=out / "model", checkpoint_dir=out / "ckpt",
                      device="cpu", **kw)
    return run(cfg, callbacks=callbacks, echo=lambda s: None)


@pytest.fixture(scope="module")
def digits_run(digits_data, tmp_path_factory) -> Path:
    """The `small` model on the bundled digits, 3 epochs, with a target it reaches (seconds to target set):
    the session's shared run (tests/_runs.py), read only."""
    out = shared_digits_run(tmp_path_factory, digits_data)
    res = read_results(out)
    assert res.dataset.name == "digits" and res.epoch_to_target is not None and res.seconds.to_target is not None
    return out


def cli(*args: str):
    """`python -m trainer check` through the real entry point (kept for a passing run and for no argument)."""
    return run_cmd([sys.executable, "-m", "trainer", "check", *args])


def check_here(*args: str) -> subprocess.CompletedProcess:
    """The same command in this process (tests/_cli.py)."""
    return trainer_here("check", *args)


def tampered(run_dir: Path, tmp_path: Path, results: Callable[[dict], None] | None = None,
             metrics: Callable[[list[dict]], None] | None = None,
             log: Callable[[list[str]], None] | None = None) -> Path:
    """A copy of a run directory with its files edited by hand."""
    copy = Path(shutil.copytree(run_dir, tmp_path / "copy"))
    if results:
        doc = json.loads((copy / "results.json").read_text())
        results(doc)
        (copy / "results.json").write_text(json.dumps(doc, indent=2))
    if metrics:
        recs = read_metrics(copy)
        metrics(recs)
        (copy / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    if log:
        lines = (copy / "train.log").read_text().splitlines()
        log(lines)
        (copy / "train.log").write_text("\n".join(lines) + "\n")
    return copy


def lines_of(problems) -> list[str]:
    return [str(p) for p in problems]


# ---------------------------------------------------------------------------------------------- real runs
def test_a_real_digits_run_passes(digits_run):
    report = run_checks(digits_run)
    assert lines_of(report.problems) == [] and report.notes == []
    proc = cli(str(digits_run))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.startswith("ok: ") and proc.stderr == ""


def test_a_real_run_with_validation_on_an_unknown_dataset_passes_with_a_note(color_data, tmp_path):
    out = tmp_path / "colors-run"
    # min_steps 0: one pass an epoch (3 steps), not the preset's 200-step budget; what is checked is the same
    assert train(color_data, out, per_class=10, target_accuracy=0.99,
                 overrides={"epochs": 2, "batch_size": 8, "min_steps": 0}).exit_code == 0
    res = read_results(out)
    assert res.val_accuracy is not None  # the validation lines are checked too
    report = run_checks(out)
    assert lines_of(report.problems) == []
    assert report.notes == ["fingerprint not checked: unknown dataset 'colors'"]
    proc = check_here(str(out))
    assert proc.returncode == 0 and "note: fingerprint not checked: unknown dataset 'colors'" in proc.stdout


class PreemptOnce(L.Callback):
    """SIGTERM as Lightning reports it (SIGTERMException) at the start of the second epoch, first try only."""

    def __init__(self):
        self.fired = False

    def on_train_epoch_start(self, trainer, module):
        if trainer.current_epoch == 1 and not self.fired:
            from lightning.pytorch.utilities.exceptions import SIGTERMException

            self.fired = True
            raise SIGTERMException(143)


def test_a_resumed_run_passes(color_data, tmp_path):
    """train.log holds both attempts, metrics.jsonl and results.json the whole history."""
    out, hp = tmp_path / "resumed", {"epochs": 3, "batch_size": 32}
    first = train(color_data, out, callbacks=[PreemptOnce()], target_accuracy=0.5, overrides=hp)
    assert first.exit_code == EXIT_PREEMPTED
    assert train(color_data, out, target_accuracy=0.5, overrides=hp).exit_code == 0
    assert read_results(out).resumed_from_epoch == 1
    assert "Resuming from" in (out / "train.log").read_text()
    assert lines_of(check_run_dir(out)) == []


# ---------------------------------------------------------------------------------------------- tampered copies
def _edit_accuracy(r):
    # lower, never above top-5 or 1: only the confusion matrix and the log disagree, whatever the run reached
    r["test_accuracy"] = round(r["test_accuracy"] - 0.05, 6)


def _remove_epoch2_test_accuracy(lines):
    at = lines.index("- Epoch: 2")
    del lines[next(i for i in range(at, len(lines)) if lines[i].startswith("- Test accuracy:"))]


def _change_epoch2_test_accuracy(lines):
    at = lines.index("- Epoch: 2")
    i = next(i for i in range(at, len(lines)) if lines[i].startswith("- Test accuracy:"))
    lines[i] = "- Test accuracy: 0.123"


def _garble_a_line(lines):
    lines[lines.index("- Epoch: 2") + 1] = "- Train loss: n/a"


def _per_epoch_off(r):
    r["seconds"]["per_epoch"][1] += 1.0


def _train_seconds_off(r):
    # less, never more: a larger figure could also push data + train + eval past the process total
    r["seconds"]["train"] *= 0.8


def _to_target_at_another_epoch(run_dir):
    def edit(r):
        recs = read_metrics(run_dir)
        other = 3 if r["epoch_to_target"] != 3 else 2
        r["epoch_to_target"], r["seconds"]["to_target"] = other, recs[other - 1]["train_seconds"]
    return edit


def _to_target_seconds_off(r):
    r["seconds"]["to_target"] += 0.5


def _matrix_off(r):
    cm, i = r["confusion_matrix"], 3
    cm[i][i] -= 1
    cm[i][(i + 1) % len(cm)] += 1


def _per_class_off(r):
    r["per_class_accuracy"]["7"] = 0.25


def _wrong_fingerprint(r):
    r["dataset"]["fingerprint"] = "0" * 64


def _metrics_line_garbled(recs):
    recs[1]["test_accuracy"] = "high"


def _unknown_field(r):
    r["extra_figure"] = 1


def _missing_field(r):
    del r["test_top5_accuracy"]


def _container_without_digest(r):
    r["platform"], r["image_digest"] = "sagemaker", None


def _bad_digest(r):
    r["image_digest"] = "latest"


CASES = {  # name → (files edited, the one line each expected problem starts with)
    "accuracy edited": (dict(results=_edit_accuracy), ["results.json: test_accuracy: expected"]),
    "log line removed": (dict(log=_remove_epoch2_test_accuracy),
                         ["train.log: Test accuracy line missing (epoch 2"]),
    "log figure changed": (dict(log=_change_epoch2_test_accuracy),
                           ["train.log:", "Test accuracy (epoch 2) disagrees with metrics.jsonl"]),
    "log line garbled": (dict(log=_garble_a_line), ["train.log:", "metric line does not parse"]),
    "per-epoch seconds don't add up": (dict(results=_per_epoch_off),
                                       ["results.json: seconds.per_epoch (adds up to"]),
    "train seconds don't add up": (dict(results=_train_seconds_off), ["results.json: seconds.train: expected"]),
    "to_target at the wrong epoch": (None, ["results.json: epoch_to_target, seconds.to_target: expected epoch"]),
    "to_target seconds off": (dict(results=_to_target_seconds_off), ["results.json: seconds.to_target: expected"]),
    "confusion matrix inconsistent": (dict(results=_matrix_off),
                                      ["results.json: confusion_matrix trace / total"]),
    "per-class accuracy inconsistent": (dict(results=_per_class_off),
                                        ["results.json: per_class_accuracy (confusion matrix rows"]),
    "wrong fingerprint for digits": (dict(results=_wrong_fingerprint),
                                     ["results.json: dataset.fingerprint of the known dataset 'digits'"]),
    "metrics line invalid": (dict(metrics=_metrics_line_garbled),
                             ["metrics.jsonl:2: test_accuracy is not a finite number"]),
    "field not in the schema": (dict(results=_unknown_field), ["results.json: extra_figure: field not in the schema"]),
    "field missing": (dict(results=_missing_field), ["results.json: test_top5_accuracy: required field missing"]),
    "container run without digest": (dict(results=_container_without_digest),
                                     ["results.json: image_digest of a container run"]),
    "malformed digest": (dict(results=_bad_digest), ["results.json: image_digest format"]),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_tampered_copy_fails_with_one_line_per_problem(digits_run, tmp_path, case):
    edits, expected = CASES[case]
    if edits is None:
        edits = dict(results=_to_target_at_another_epoch(digits_run))
    copy = tampered(digits_run, tmp_path, **edits)
    found = lines_of(check_run_dir(copy))
    assert len(found) == 1, "\n".join(found)
    assert found[0].startswith(expected[0]) and all(part in found[0] for part in expected), found[0]
    assert "\n" not in found[0]


def test_the_command_prints_one_line_per_problem(digits_run, tmp_path):
    copy = tampered(digits_run, tmp_path, results=lambda r: (_edit_accuracy(r), _wrong_fingerprint(r)),
                    log=_remove_epoch2_test_accuracy)
    proc = check_here(str(copy))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    out = proc.stdout.splitlines()
    assert len(out) == 3 and proc.stderr == "", proc.stdout
    assert any(line.startswith("results.json: test_accuracy: expected") for line in out)
    assert any(line.startswith("results.json: dataset.fingerprint") for line in out)
    assert any(line.startswith("train.log: Test accuracy line missing (epoch 2") for line in out)


def test_a_native_run_on_a_container_platform_needs_no_digest(digits_run, tmp_path):
    copy = tampered(digits_run, tmp_path, results=_container_without_digest)
    assert check_run_dir(copy, container=False) == []
    assert check_here(str(copy), "--native").returncode == 0
    assert check_here(str(digits_run), "--container").returncode == 1  # a local run said to be in the image


def test_an_unknown_dataset_is_a_note_not_a_problem(digits_run, tmp_path):
    copy = tampered(digits_run, tmp_path, results=lambda r: r["dataset"].update(name="my-digits"))
    report = run_checks(copy)
    assert report.problems == []
    assert report.notes == ["fingerprint not checked: unknown dataset 'my-digits' (its fingerprint is that of 'digits')"]


def test_another_schema_version_is_one_line(digits_run, tmp_path):
    copy = tampered(digits_run, tmp_path, results=lambda r: r.update(schema_version=r["schema_version"] + 1))
    assert [p.what for p in check_run_dir(copy)] == [
        "schema_version (fields not checked against another version's schema)"]


def test_a_schema_2_run_is_checked_as_one_process(digits_run, tmp_path):
    def to_v2(r):
        r.update(schema_version=2)
        del r["hardware"]["world_size"], r["hardware"]["nodes"]

    assert check_run_dir(tampered(digits_run, tmp_path, results=to_v2)) == []


def test_missing_files_are_problems(digits_run, tmp_path):
    copy = tampered(digits_run, tmp_path)
    (copy / "train.log").unlink()
    (copy / "metrics.jsonl").unlink()
    assert lines_of(check_run_dir(copy)) == ["metrics.jsonl: file missing: expected a file, found nothing",
                                             "train.log: file missing: expected a file, found nothing"]


# ---------------------------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("make", ["missing", "file", "no results"])
def test_unusable_input_is_one_line_and_exit_2(tmp_path, make):
    target = tmp_path / "run"
    if make == "file":
        target.write_text("x")
    elif make == "no results":
        target.mkdir()
    proc = check_here(str(target))
    assert proc.returncode == 2 and proc.stdout == ""
    assert_one_line_error(proc)


def test_no_argument_is_one_line_and_exit_2():
    proc = cli()
    assert proc.returncode == 2
    assert_one_line_error(proc)


def test_results_that_are_not_json_are_one_problem(tmp_path):
    (tmp_path / "results.json").write_text("{not json")
    (tmp_path / "metrics.jsonl").write_text('{"epoch": 1, "epoch_seconds": 1.0, "train_seconds": 1.0, '
                                            '"test_accuracy": 0.5}\n')
    (tmp_path / "train.log").write_text("- Epoch: 1\n")
    proc = check_here(str(tmp_path))
    assert proc.returncode == 1 and proc.stdout.splitlines() == [
        "results.json:1: not valid JSON: expected a JSON object, found Expecting property name enclosed in "
        "double quotes at line 1"]


# ---------------------------------------------------------------------------------------------- known fingerprints
def test_known_digits_fingerprint(digits_data):
    """Recomputes the table's digits entry with the real code (`platbench data prepare digits` writes the
    same folder): if Pillow, zlib or scikit-learn change the bytes, this fails and says what to put there."""
    known = KNOWN_DATASETS["digits"]
    from trainer.data.layout import scan_folder

    ds = scan_folder(digits_data)
    assert fingerprint(digits_data) == known.fingerprint, \
        f"update trainer/check.py KNOWN_DATASETS['digits'].fingerprint to {fingerprint(digits_data)}"
    assert (tuple(ds.classes), len(ds.train.files), len(ds.test.files)) == \
        (known.classes, known.train_count, known.test_count)
    assert "cifar10" not in KNOWN_DATASETS  # see check.py: not computable honestly without the real download
    assert check.DIGEST.match("sha256:" + "a" * 64)


def test_a_log_figure_agrees_when_it_differs_only_by_the_six_decimal_rounding_of_metrics_jsonl():
    # metrics.jsonl keeps train_seconds to 6 decimals (3.622385); the log printed the unrounded figure
    # (3.622385083 → "3.62239"). Both print from the same measurement: no problem. CI failed on this once.
    report = check.Report()
    expected = [check._Expected("seconds_to_target", 3.622385, "final", "results.json")]
    found = [check._LogLine(26, "seconds_to_target", 3.62239)]
    check._compare(found, expected, set(), None, report)
    assert report.problems == []
    # a figure really off still is one
    check._compare([check._LogLine(26, "seconds_to_target", 3.7)], expected, set(), None, report)
    assert len(report.problems) == 1
