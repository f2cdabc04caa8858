"""The report's scaling section (issue 17): training images/s in all and per device, efficiency, time to
target and accuracy against the device count (world_size), from runs recorded into a real MLflow store with
the launchers' metric names and the results.json artifact TrackedRun.import_outputs logs.

Every run's training clock (seconds_train) differs from its trainer wall time (seconds_total) and its
end-to-end time (seconds_wall), and world_size differs from nodes, so a figure over the wrong clock or the
wrong divisor fails here."""
from __future__ import annotations

import json
import statistics
from pathlib import Path

import pytest
from test_report import html_rows, md_section, md_tables, parse_html, pm, tracking_uri

ROOT = Path(__file__).resolve().parent.parent

# (world_size, nodes, seed, seconds_train, reached target): group local · fast · 20/class
FAST = [(1, 1, 0, 40.0, True), (1, 1, 1, 44.0, True), (2, 1, 0, 24.0, True), (2, 1, 1, 26.0, False),
        (4, 2, 0, 15.0, True)]
FAST_DOC = {"epochs": 3, "steps_per_epoch": 10, "batch_size": 64, "train_count": 1000}   # 1,920 images
# group local · small · 5/class: fewer training images (50) than the preset's batch (64), so each global
# batch is the whole set (trainer/train.py: min(batch_size, len(x_train))); one run from before schema 3
# (no world_size metric: one process)
SMALL = [(None, None, 0, 10.0, False), (2, 1, 0, 6.0, False)]
SMALL_DOC = {"epochs": 4, "steps_per_epoch": 5, "batch_size": 64, "train_count": 50}     # 1,000 images


def images(doc: dict) -> int:
    return doc["epochs"] * doc["steps_per_epoch"] * min(doc["batch_size"], doc["train_count"])


def record(folder: Path, model: str, pc: int, runs, doc: dict, with_artifact: bool = True) -> list[str]:
    from platforms.core import tracking
    from platforms.core.tracking import Tag

    ids = []
    for world, nodes, seed, train, reached in runs:
        with tracking.tracked_run(f"local-{model}", {"model": model, "per_class": pc, "seed": seed,
                                                     "target_accuracy": 0.9},
                                  {Tag.PLATFORM: "local", Tag.MODEL: model}) as run:
            scale = {"world_size": world, "nodes": nodes} if world is not None else {}
            run.metrics({"final_test_accuracy": 0.9 + 0.01 * seed, "seconds_train": train,
                         "seconds_total": train * 3 + 7, "seconds_wall": train * 5 + 30,
                         "seconds_to_target": train * 0.5 if reached else None, **scale})
            if with_artifact:
                path = folder / "results.json"  # the fields the image count is read from, as the trainer writes them
                path.write_text(json.dumps({
                    "schema_version": 3 if world is not None else 2, "epochs_completed": doc["epochs"],
                    "hyperparameters": {"batch_size": doc["batch_size"], "epochs": doc["epochs"]},
                    "dataset": {"train_count": doc["train_count"], "per_class": pc},
                    "schedule": {"epochs": doc["epochs"], "steps_per_epoch": doc["steps_per_epoch"],
                                 "steps": doc["epochs"] * doc["steps_per_epoch"]},
                    **({"hardware": {"world_size": world, "nodes": nodes}} if world is not None else {})}))
                run.client.log_artifact(run.run_id, str(path))
            run.tags({Tag.STATUS: "finished"})
            run.end("FINISHED")
            ids.append(run.run_id)
    return ids


@pytest.fixture(scope="module")
def scaled(tmp_path_factory):
    from platforms.report import build

    folder = tmp_path_factory.mktemp("scaling-store")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    with tracking_uri(uri):
        fast = record(folder, "fast", 20, FAST, FAST_DOC)
        small = record(folder, "small", 5, SMALL, SMALL_DOC)
        # a group at one device count only: not in the section
        record(folder, "resnet18", 20, [(1, 1, 0, 50.0, True)], FAST_DOC)
        # a run whose results.json is not in MLflow: in the table, named, no images/s made up
        bare = record(folder, "small", 80, [(1, 1, 0, 9.0, True), (2, 1, 0, 5.0, True)], FAST_DOC, with_artifact=False)
        written = build(folder / "rep", root=ROOT)
    return folder / "rep", written, {"fast": fast, "small": small, "bare": bare}


def expected_rows(runs, doc):
    by_n: dict[int, list] = {}
    for world, nodes, seed, train, reached in runs:
        by_n.setdefault(world or 1, []).append((world or 1, nodes or 1, seed, train, reached))
    base = min(by_n)
    base_median = statistics.median(images(doc) / r[3] / r[0] for r in by_n[base])
    out = {}
    for n, rs in by_n.items():
        total = [images(doc) / r[3] for r in rs]           # over the training clock, all devices together
        per_device = [v / n for v in total]                # over world_size, not nodes
        reached = [r[3] * 0.5 for r in rs if r[4]]
        out[str(n)] = {"Runs": str(len(rs)), "Nodes": ", ".join(str(x) for x in sorted({r[1] for r in rs})),
                       "Train images/s": pm(total, "{:.1f}"), "Train images/s per device": pm(per_device, "{:.1f}"),
                       "Efficiency": f"{statistics.median(per_device) / base_median:.2f}",
                       "Train s to target": (f"{pm(reached, '{:.2f}')} ({len(reached)}/{len(rs)} reached)" if reached
                                             else f"not reached (0/{len(rs)})"),
                       "Test accuracy": pm([0.9 + 0.01 * r[2] for r in rs])}
    return out


def table_by_group(rows: list[dict]) -> dict[tuple, dict[str, dict]]:
    out: dict[tuple, dict[str, dict]] = {}
    for row in rows:
        out.setdefault((row["Model"], row["Images/class"]), {})[row["Devices"]] = row
    return out


def test_scaling_table_is_images_over_training_clock_per_world_size(scaled):
    out, written, _ = scaled
    assert written.sections.index("scaling") == written.sections.index("time-accuracy") + 1
    md = md_section((out / "report.md").read_text(), "scaling")
    tables = md_tables(md)
    assert len(tables) == 1
    got = table_by_group(tables[0])
    assert set(got) == {("fast", "20"), ("small", "5"), ("small", "80")}  # resnet18 ran at one count only
    for key, runs, doc in ((("fast", "20"), FAST, FAST_DOC), (("small", "5"), SMALL, SMALL_DOC)):
        want = expected_rows(runs, doc)
        assert set(got[key]) == set(want)
        for n, cells in want.items():
            for col, value in cells.items():
                assert got[key][n][col] == value, (key, n, col)
    # the numbers themselves, by hand: 1,920 images in 24 s on 2 devices → 80 images/s → 40 per device
    assert got[("fast", "20")]["2"]["Train images/s"].startswith("76.9 ± ")  # 1920/24 = 80, 1920/26 = 73.8
    assert got[("small", "5")]["2"]["Train images/s per device"] == "83.3"   # 1000 / 6 / 2
    assert got[("small", "5")]["1"]["Train images/s per device"] == "100.0"  # pre-schema-3 run: 1 device
    assert got[("small", "5")]["2"]["Efficiency"] == "0.83"
    assert got[("fast", "20")]["4"]["Nodes"] == "2"


def test_time_accuracy_never_pools_device_counts_and_says_which_groups_it_split(scaled):
    """The device count is part of a run's condition (issue 25): groups run at several counts are split into
    one row per count, and the note names them and the field, where it once said their seconds were mixed."""
    out, _, _ = scaled
    md = md_section((out / "report.md").read_text(), "time-accuracy")
    assert ("local · fast · 20/class (3 rows: they differ in device count); local · small · 5/class (2 rows: they "
            "differ in device count); local · small · 80/class (2 rows: they differ in device count).") in md
    rows = md_tables(md)[0]
    assert sorted(r["Condition"] for r in rows if (r["Model"], r["Images/class"]) == ("fast", "20")) == [
        "device count 1", "device count 2", "device count 4"]


def test_runs_without_results_json_are_named_not_guessed(scaled):
    out, _, ids = scaled
    md = md_section((out / "report.md").read_text(), "scaling")
    row = table_by_group(md_tables(md)[0])[("small", "80")]
    assert row["1"]["Train images/s"] == row["2"]["Train images/s per device"] == "–"
    assert row["1"]["Efficiency"] == "–"
    assert row["2"]["Train s to target"] == "2.50 (1/1 reached)"
    for rid in ids["bare"]:
        assert f"`{rid}` (no results.json artifact)" in md


def test_html_says_the_same_and_draws_the_figure(scaled):
    out, written, ids = scaled
    page = parse_html(out / "index.html")
    md_rows = md_tables(md_section((out / "report.md").read_text(), "scaling"))[0]
    html = html_rows(page, "scaling-table")
    assert [{k: v for k, v in r.items() if k != "_runs"} for r in html] == md_rows
    fast_runs = {r["_runs"] for r in html if r["Model"] == "fast"}
    assert fast_runs == {" ".join(ids["fast"][:2]), " ".join(ids["fast"][2:4]), ids["fast"][4]}
    assert "scaling" in page.sections
    assert "fig-scaling" in page.figures
    cited = set(page.figures["fig-scaling"]["runs"])
    assert cited == set(ids["fast"] + ids["small"] + ids["bare"])
    assert (out / "figures" / "fig-scaling.svg").is_file()


def test_no_group_at_two_device_counts_says_how_to_make_one(tmp_path):
    from platforms.report import build

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    with tracking_uri(uri):
        record(tmp_path, "fast", 20, [(1, 1, 0, 40.0, True), (None, None, 1, 41.0, True)], FAST_DOC)
        record(tmp_path, "small", 20, [(2, 1, 0, 20.0, True)], FAST_DOC)  # two devices, but no other count
        written = build(tmp_path / "rep", root=ROOT)
    md = md_section((tmp_path / "rep" / "report.md").read_text(), "scaling")
    assert "> **No data yet.** No platform × model × images-per-class group has finished runs at two or more " \
           "device counts yet" in md
    assert "`platbench launch local --devices 2`" in md
    assert not md_tables(md)
    assert "fig-scaling" not in parse_html(tmp_path / "rep" / "index.html").figures
    assert "scaling" in written.sections
    # a run without world_size is one device: the fast group (1 and none) is not mixed
    assert "pool runs on different device counts" not in md_section((tmp_path / "rep" / "report.md").read_text(),
                                                                     "time-accuracy")
