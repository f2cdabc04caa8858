"""Like with like (issue 25): runs of different experiments never share a report row. A store of local runs
on two datasets and at two epoch counts, plus sagemaker runs under two of those conditions, recorded with the
names the launchers and TrackedRun.import_outputs log (params epochs and hp.*, the dataset fingerprint tag),
then the report built in process."""
from __future__ import annotations

from pathlib import Path

import shutil

import pytest
from stand_in import stand_in  # noqa: F401 (fixture)
from test_report import html_rows, md_section, md_tables, parse_html, tracking_uri

ROOT = Path(__file__).resolve().parent.parent
A, B = "a" * 64, "b" * 64
# (platform, dataset, epochs, seed, accuracy): local seed 0 on A at 1 epoch ran twice (a rerun: one seed)
RUNS = [("local", A, 1, 0, 0.50), ("local", A, 1, 0, 0.52), ("local", A, 1, 1, 0.54),
        ("local", A, 3, 0, 0.90), ("local", B, 1, 0, 0.20),
        ("sagemaker", A, 1, 0, 0.55), ("sagemaker", A, 1, 1, 0.57), ("sagemaker", B, 30, 0, 0.99)]


@pytest.fixture(scope="module")
def report(tmp_path_factory, stand_in):
    from platforms.core import tracking
    from platforms.core.tracking import Tag
    from platforms.report import build

    folder = tmp_path_factory.mktemp("condition-store")
    ids: dict[tuple, list[str]] = {}
    with tracking_uri(f"sqlite:///{folder / 'mlflow.db'}"):
        for platform, data, epochs, seed, acc in RUNS:
            with tracking.tracked_run(f"{platform}-small", {"model": "small", "epochs": epochs, "seed": seed,
                                                            "hp.epochs": epochs, "hp.batch_size": 64},
                                      {Tag.PLATFORM: platform, Tag.MODEL: "small",
                                       Tag.DATASET_FINGERPRINT: data}) as run:
                run.metrics({"final_test_accuracy": acc, "seconds_train": 10.0 * epochs, "seconds_wall": 20.0 * epochs})
                run.tags({Tag.STATUS: "finished"})
                run.end("FINISHED")
                ids.setdefault((platform, data, epochs), []).append(run.run_id)
        build(folder / "rep", root=ROOT)
        # after the report, so its tables hold only the runs above: a run as a launch records it (the stand-in's
        # golden run, real trainer outputs), whose condition TrackedRun.import_outputs records
        out = folder / "golden"
        shutil.copytree(stand_in.golden, out)
        with tracking.tracked_run("local-small", {"model": "small", "seed": 0}, {Tag.PLATFORM: "local",
                                                                                Tag.MODEL: "small"}) as run:
            run.import_outputs(out)
            run.end("FINISHED")
        recorded = tracking.client().get_run(run.run_id)
    return folder / "rep", ids, recorded


def test_two_datasets_or_two_epoch_counts_never_share_a_row(report):
    out, ids, _ = report
    md = md_section((out / "report.md").read_text(), "time-accuracy")
    rows = html_rows(parse_html(out / "index.html"), "time-accuracy-table")
    assert sorted(sorted(r["_runs"].split()) for r in rows) == sorted(sorted(v) for v in ids.values())  # one row each
    md_rows = md_tables(md)[0]
    by_cond = {(r["Platform"], r["Condition"]): r for r in md_rows}
    assert set(by_cond) == {("local", f"dataset fingerprint {A[:12]} · epochs 1"),
                            ("local", f"dataset fingerprint {A[:12]} · epochs 3"),
                            ("local", f"dataset fingerprint {B[:12]} · epochs 1"),
                            ("sagemaker", f"dataset fingerprint {A[:12]} · epochs 1"),
                            ("sagemaker", f"dataset fingerprint {B[:12]} · epochs 30")}
    rerun = by_cond[("local", f"dataset fingerprint {A[:12]} · epochs 1")]
    assert (rerun["Runs"], rerun["Seeds"], rerun["Test accuracy"]) == ("3", "2", "0.5200 ± 0.0200")
    assert by_cond[("local", f"dataset fingerprint {B[:12]} · epochs 1")]["Test accuracy"] == "0.2000"
    assert ("_Note:_ Not pooled: runs of one platform, model and images per class that differ in anything but the "
            "seed are different experiments, so each condition has its own row: local · small · all/class (3 rows: "
            "they differ in dataset fingerprint, epochs); sagemaker · small · all/class (2 rows: they differ in "
            "dataset fingerprint, epochs).") in md


def test_platforms_are_compared_only_within_one_condition(report):
    out, ids, _ = report
    tests = html_rows(parse_html(out / "index.html"), "time-accuracy-tests")
    assert tests and {r["Condition"] for r in tests} == {f"dataset fingerprint {A[:12]} · epochs 1"}
    assert all(set(r["_runs"].split()) == set(ids[("local", A, 1)] + ids[("sagemaker", A, 1)]) for r in tests)
    assert {r["Runs"] for r in tests} == {"local 3, sagemaker 2"}


def test_runs_table_shows_the_fields_that_vary_and_method_says_what_a_group_is(report):
    out, ids, _ = report
    md = (out / "report.md").read_text()
    runs = {r["Run"]: r for r in md_tables(md_section(md, "runs"))[0]}
    for (platform, data, epochs), run_ids in ids.items():
        for rid in run_ids:
            assert runs[rid]["Epochs"] == str(epochs) and runs[rid]["Dataset"] == data[:12]
    assert len({runs[rid]["Condition"] for rid in ids[("local", A, 1)]}) == 1
    assert runs[ids[("local", A, 1)][0]]["Condition"] != runs[ids[("local", A, 3)][0]]["Condition"]
    method = md_section(md, "method")
    assert "A group is the runs of one platform under one condition, so they differ only by seed" in method
    assert "Seeds counts distinct seeds" in method


def test_ablation_lines_keep_conditions_apart(report):
    out, _, _ = report
    ablation = md_section((out / "report.md").read_text(), "ablation")
    assert "No runs at two or more images-per-class values yet" in ablation  # all runs are on the whole dataset


def test_a_launch_records_the_condition_the_report_computes(report):
    from platforms.core.tracking import Tag
    from platforms.report.data import _to_run

    _, _, got = report
    cond = _to_run(got).condition
    assert got.data.tags[Tag.CONDITION] == cond.key
    assert cond.get("epochs") == "2" and cond.get("dataset") == got.data.tags[Tag.DATASET_FINGERPRINT]
    assert cond.get("software") and cond.get("schedule") and cond.get("device") == "cpu"
    assert {k: v for k, v in got.data.params.items() if k.startswith("condition.")} == cond.params()
