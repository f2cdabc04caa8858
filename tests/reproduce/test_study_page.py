"""The JumpStart page from runs logged as `platbench reproduce jumpstart` logs them (one per model and learning
rate, tagged with the study): the model's run is the one of the better validation accuracy (their tuning job's
choice), its figures in the study's columns beside the published pareto table, the frontier marked."""
from __future__ import annotations

import pytest
from test_report import tracking_uri

from platforms.reproduce import protocol

# model, lr factor, val accuracy, test accuracy, top-5, images/s, seconds training, epochs run, parameters
RUNS = [("small", "1", 0.80, 0.78, 0.97, 900.0, 30.0, 3, 120_000),
        ("small", "0.2", 0.84, 0.83, 0.98, 910.0, 33.0, 3, 120_000),     # kept: the better validation accuracy
        ("fast", "1", 0.95, 0.94, 0.99, 400.0, 60.0, 2, 1_900_000),      # kept
        ("fast", "0.2", 0.90, 0.96, 1.00, 390.0, 66.0, 3, 1_900_000),    # better test, worse validation: not kept
        ("resnet18", "1", 0.70, 0.70, 0.95, 200.0, 90.0, 3, 11_000_000)]  # kept, off the frontier


@pytest.fixture(scope="module")
def section(tmp_path_factory):
    from platforms.core import tracking
    from platforms.core.tracking import Tag
    from platforms.report import data
    from platforms.report.sections import Report

    uri = f"sqlite:///{tmp_path_factory.mktemp('jumpstart') / 'store.db'}"
    with tracking_uri(uri):
        for model, lr, val, test, top5, ips, secs, epochs, params in RUNS:
            with tracking.tracked_run(f"local-{model}", {"model": model, "seed": 0, "per_class": None},
                                      {Tag.PLATFORM: "local", Tag.MODEL: model, "platbench.study": "jumpstart",
                                       "platbench.study_lr_factor": lr}) as run:
                run.metrics({"final_val_accuracy": val, "final_test_accuracy": test, "final_test_top5_accuracy": top5,
                             "plain_throughput_images_per_s": ips, "seconds_train": secs,
                             "schedule_epochs": epochs, "params_total": params})
                run.tags({Tag.STATUS: "finished"})
                run.end("FINISHED")
        rep = Report(data.gather(None))
        return rep, rep.study_section(protocol.load("jumpstart"))


def tables(section) -> dict:
    from platforms.report.sections import Table

    return {b.id: b for b in section.blocks if isinstance(b, Table)}


def test_published_table_is_the_studys_in_its_order(section):
    _, s = section
    pub = tables(s)["study-jumpstart-published"]
    assert pub.columns == ["Model (theirs)", "Parameters (M)", "Test accuracy (%)", "Top-5 (%)", "Images/s",
                           "Seconds per epoch"]
    # as published, digit for digit
    assert pub.rows[0] == ["swin-large-patch4-window12-384", "195.6", "96.4", "99.5", "0.3", "2,278.6"]
    assert len(pub.rows) == 21 and pub.rows[-1][0] == "mobilenet-v1-025-128"
    assert "AWS (Kyle Ulrich and Ashish Khetan)" in pub.caption and "Caltech-256" in pub.caption


def test_each_model_stands_by_its_better_validation_run_and_the_frontier_is_marked(section):
    rep, s = section
    ours = tables(s)["study-jumpstart-local"]
    rows = {r[0]: r for r in ours.rows}
    # sorted by images/s up, as the study's table; small's lr×0.2 run and fast's lr×1 run are the ones kept
    assert [r[0] for r in ours.rows] == ["resnet18", "fast (frontier)", "small (frontier)"]
    assert rows["small (frontier)"][1:] == ["0.12 (n = 1)", "83.00 (n = 1)", "98.00 (n = 1)", "910.00 (n = 1)",
                                            "11.00 (n = 1)", "lr×0.2"]
    assert rows["fast (frontier)"][2] == "94.00 (n = 1)" and rows["fast (frontier)"][-1] == "lr×1"
    assert rows["fast (frontier)"][5] == "30.00 (n = 1)"   # seconds per epoch: 60 s over the 2 epochs it ran
    assert "what still differs" in ours.caption.lower() and "Caltech-256" in ours.caption
    # the runs behind each row are cited
    assert all(len(ids) == 1 for ids in ours.run_ids) and len(rep.cited) == 5


def test_what_cannot_be_measured_is_listed_with_why(section):
    _, s = section
    rows = tables(s)["study-jumpstart-unmeasured"].rows
    assert any("TensorFlow Hub" in r[0] and "PyTorch" in r[2] for r in rows)


@pytest.fixture(scope="module")
def roboflow(tmp_path_factory):
    """Roboflow's runs as reproduce logs them: its two models trained, each served 100 frames in parallel by the
    trainer's torch server on the CPU (the fast model's run untagged, as runs before deployment targets were),
    and the fast model also exported to ONNX and served by onnxruntime: a target of its own."""
    from platforms.core import tracking
    from platforms.core.tracking import Tag
    from platforms.report import data
    from platforms.report.sections import Report

    uri = f"sqlite:///{tmp_path_factory.mktemp('roboflow') / 'store.db'}"
    study = {"platbench.study": "roboflow"}
    with tracking_uri(uri):
        for model, secs, fps in (("fast", 40.0, 310.0), ("resnet18", 100.0, 120.0)):
            with tracking.tracked_run(f"local-{model}", {"model": model, "seed": 0},
                                      {Tag.PLATFORM: "local", Tag.MODEL: model, **study}) as run:
                run.metrics({"final_test_accuracy": 0.9, "seconds_train": secs})
                run.tags({Tag.STATUS: "finished"})
                run.end("FINISHED")
            served = [(fps, {} if model == "fast" else {"platbench.study_target": "torch-cpu"})]
            if model == "fast":
                served.append((500.0, {"platbench.study_target": "onnx-cpu"}))
            for images_per_s, target in served:
                with tracking.tracked_run(f"load-local-{model}", {"requests": 200, "concurrency": 100, "retries": 0},
                                          {Tag.PLATFORM: "local", Tag.MODEL: model, Tag.KIND: "load",
                                           "platbench.study_plan": "parallel_100", **study, **target}) as run:
                    run.metrics({"load_images_per_s": images_per_s, "load_ok": 200, "load_latency_p50_ms": 300.0})
                    run.tags({Tag.STATUS: "finished"})
                    run.end("FINISHED")
        rep = Report(data.gather(None, latency=False))
        return rep.study_section(protocol.load("roboflow")), Report(data.gather(None, latency=False)).study_section(
            protocol.load("aws-azure"))


def test_roboflow_fps_per_served_model_and_the_training_time_ratio(roboflow):
    s, _ = roboflow
    rows = tables(s)["study-roboflow-figures"].rows
    fps = [r for r in rows if r[0] == "frames per second, 100 in parallel"]
    # one row per deployment target and model served, never pooled (fast's two would be 405 FPS, n = 2), beside
    # their 300 FPS; the study names several targets, so each row names its own
    assert [(r[2], r[3]) for r in fps] == [("300 FPS", "local/onnx-cpu · fast: 500.00 FPS (n = 1)"),
                                          ("300 FPS", "local/torch-cpu · fast: 310.00 FPS (n = 1)"),
                                          ("300 FPS", "local/torch-cpu · resnet18: 120.00 FPS (n = 1)")]
    ratio = next(r for r in rows if r[0] == "training time, accurate ÷ fast")
    assert ratio[2] == "2 ×" and ratio[3] == "local: 2.50 × (n = 1)"
    assert "mean seconds training resnet18 / fast" in ratio[4]
    # the request plans by target, apart, whether or not the study published a figure for them
    serving = tables(s)["study-roboflow-serving"]
    assert [r[:3] + [r[4]] for r in serving.rows] == [
        ["local/onnx-cpu", "fast", "parallel_100", "500.00 images/s (n = 1)"],
        ["local/torch-cpu", "fast", "parallel_100", "310.00 images/s (n = 1)"],
        ["local/torch-cpu", "resnet18", "parallel_100", "120.00 images/s (n = 1)"]]
    assert all(len(ids) == 1 for ids in serving.run_ids)


def test_a_study_without_runs_says_so_in_every_row(roboflow):
    # the per-batch pipeline is built (platforms/reproduce/pipeline.py answers its quantities): no row says "not
    # built yet" any more; with no run of the study, each says no run measured it
    _, s = roboflow
    rows = tables(s)["study-aws-azure-figures"].rows
    download = [r for r in rows if r[0] == "download time per batch"]
    assert download[0][1:4] == ["AWS", "mean 0.78 ± 0.02 s/MB (n = 116)", "–: –"]
    assert all("no run of this study measured it yet" in r[4] for r in rows if r[0] != "endpoint cost per hour")
    assert not any("not built yet" in r[4] for r in rows)
    assert any("No runs of this study yet" in b.text for b in s.blocks if hasattr(b, "text"))


def test_a_target_that_served_nothing_is_listed_with_why(roboflow):
    # the fixture's runs served at torch-cpu and onnx-cpu; torch-gpu ran nowhere: the page says so, and why
    from trainer.device import driver_version

    s, _ = roboflow
    rows = {r[0]: r for r in tables(s)["study-roboflow-unmeasured"].rows}
    why = rows["request plans at local/torch-gpu"][2]
    assert why.startswith("skipped: ") and ("no NVIDIA driver" in why if not driver_version() else True)
    assert "request plans at local/onnx-cpu" not in rows and "request plans at local/torch-cpu" not in rows
