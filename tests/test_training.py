"""Training end to end on CPU: the output contract, log lines, time to target, per-class runs, and
preemption by a real SIGTERM with a resume that ends with the same result."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import lightning as L
import pytest
from _cli import trainer_here
from conftest import VENV_BIN, run_cmd

from trainer import loglines
from trainer.results import read_metrics, read_results
from trainer.train import EXIT_PREEMPTED, TrainConfig, run


def train(data: Path, out: Path, callbacks=None, **kw):
    cfg = TrainConfig(data_dir=data, output_dir=out, model_dir=out / "model", checkpoint_dir=out / "ckpt", **kw)
    lines: list[str] = []
    outcome = run(cfg, callbacks=callbacks, echo=lines.append)
    return outcome, lines


class ImagesAfterFit(L.Callback):
    """Images through the network, and through the classifier around it, once training is over: what the
    inference measurement feeds the plain network, then the classifier as evaluated (with its TTA)."""

    def __init__(self):
        self.net = self.classifier = 0

    def on_fit_end(self, trainer, module):
        def count(name):
            def hook(_, args):
                setattr(self, name, getattr(self, name) + len(args[0]))
            return hook

        module.net.register_forward_pre_hook(count("net"))
        module.register_forward_pre_hook(count("classifier"))


# as if run from an image (tests/test_image_identity.py's launches check the rest of the digest's way on the stand-in)
DIGEST, IMAGE_ID = "sha256:" + "a" * 64, "sha256:" + "c" * 64


@pytest.fixture(scope="module")
def finished(color_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    outcome, lines = train(color_data, out, target_accuracy=0.5, image_digest=DIGEST, image_id=IMAGE_ID,
                           overrides={"epochs": 3, "batch_size": 32})
    return out, outcome, lines


def test_results_contract(finished):
    out, outcome, _ = finished
    assert outcome.status == "finished" and outcome.exit_code == 0
    res = read_results(out)
    data = json.loads((out / "results.json").read_text())
    for key in ("schema_version", "platform", "dataset", "model", "hyperparameters", "seed", "hardware", "seconds",
                "test_accuracy", "test_top5_accuracy", "per_class_accuracy", "confusion_matrix",
                "plain_throughput_images_per_s", "plain_latency_ms_per_image", "evaluated_throughput_images_per_s",
                "evaluated_latency_ms_per_image", "params", "software", "schedule"):
        assert key in data
    assert data["schema_version"] == 3
    assert (res.image_digest, res.image_id) == (DIGEST, IMAGE_ID)  # what the image's launcher passed
    assert "throughput_images_per_s" not in data and "evaluation" not in data["seconds"]
    assert res.dataset.classes == ["blue", "green", "red"] and res.dataset.train_count == 120
    assert len(res.dataset.fingerprint) == 64
    assert res.hardware.device == "cpu"
    assert len(res.seconds.per_epoch) == 3 and abs(sum(res.seconds.per_epoch) - res.seconds.train) < 1e-3
    assert res.seconds.train < res.seconds.total
    cm = res.confusion_matrix
    assert sum(map(sum, cm)) == 36
    assert abs(sum(cm[i][i] for i in range(3)) / 36 - res.test_accuracy) < 1e-9
    assert res.test_top5_accuracy == 1.0  # 3 classes: the top-5 always holds the label
    assert set(res.per_class_accuracy) == {"blue", "green", "red"}
    assert res.plain_throughput_images_per_s > 0 and res.plain_latency_ms_per_image > 0
    # `small` has no TTA: the evaluated model is the plain one, measured once
    assert res.evaluated_throughput_images_per_s == res.plain_throughput_images_per_s
    assert res.evaluated_latency_ms_per_image == res.plain_latency_ms_per_image
    assert res.seconds.eval > 0 and res.seconds.train + res.seconds.eval < res.seconds.total
    assert res.schedule.model_dump() == {"epochs": 3, "passes_per_epoch": 1, "steps_per_epoch": 3, "steps": 9,
                                         "min_steps": 200, "reason": None}  # full data: the preset's epochs, whatever min_steps
    assert res.params.total == res.params.trainable > 0
    assert res.test_accuracy > 0.6  # a learnable dataset: colour is the class


def test_time_to_target_is_train_seconds_at_the_first_epoch_reaching_it(finished):
    out, _, _ = finished
    res = read_results(out)
    epochs = read_metrics(out)
    first = next(e for e in epochs if e["test_accuracy"] >= 0.5)
    assert res.epoch_to_target == first["epoch"]
    assert res.seconds.to_target == pytest.approx(first["train_seconds"], abs=1e-5)


def test_metrics_jsonl_and_model_files(finished):
    out, _, _ = finished
    epochs = read_metrics(out)
    assert [e["epoch"] for e in epochs] == [1, 2, 3]
    assert all({"train_loss", "train_accuracy", "test_accuracy", "epoch_seconds", "lr"} <= set(e) for e in epochs)
    card = json.loads((out / "model/model.json").read_text())
    assert card["preset"] == "small" and card["classes"] == ["blue", "green", "red"]
    import torch

    from trainer.models import get_preset

    net = get_preset("small").build(3)
    net.load_state_dict(torch.load(out / "model/model.pt", weights_only=True))


def test_log_lines_parse_with_one_regex_each(finished):
    out, outcome, lines = finished
    text = (out / "train.log").read_text()
    assert "\n".join(lines) in text
    figures = loglines.parse(text)
    res = outcome.results
    assert figures["epoch"] == [1, 2, 3]
    assert figures["test_accuracy"][-1] == pytest.approx(res.test_accuracy, rel=1e-5)
    assert figures["seconds_to_target"] == [pytest.approx(res.seconds.to_target, rel=1e-5)]
    for name in ("plain_throughput_images_per_s", "plain_latency_ms_per_image", "evaluated_throughput_images_per_s",
                 "evaluated_latency_ms_per_image"):
        assert figures[name] == [pytest.approx(getattr(res, name), rel=1e-5)]
    assert figures["eval_seconds"] == [pytest.approx(res.seconds.eval, rel=1e-5)]
    assert figures["optimizer_steps"] == [res.schedule.steps]
    assert re.search(loglines.regex("test_accuracy"), "- Test accuracy: 0.9412").group(1) == "0.9412"


def test_per_class_run_holds_out_validation(color_data, tmp_path):
    # min_steps 0: this checks the split, not the step budget (tests/test_trainer_schedule.py does)
    outcome, _ = train(color_data, tmp_path, per_class=10, overrides={"epochs": 1, "batch_size": 8, "min_steps": 0})
    res = outcome.results
    assert res.dataset.per_class == 10 and res.dataset.train_count == 24 and res.dataset.val_count == 6
    assert res.val_accuracy is not None and "val_accuracy" in read_metrics(tmp_path)[0]


def test_fast_and_resnet18_presets_train_a_step_on_cpu(tmp_path):
    from conftest import write_folder_dataset

    # a step and a measurement are what is checked, not accuracy: 12 training and 6 test images (the test set
    # sets the measurement's cost, a forward pass per image per TTA view, and the big presets' evaluation)
    data = write_folder_dataset(tmp_path / "tiny", train_per_class=4, test_per_class=2)
    for preset, passes in (("fast", 6), ("resnet18", 2)):
        seen = ImagesAfterFit()
        outcome, _ = train(data, tmp_path / preset, callbacks=[seen], model=preset,
                           overrides={"epochs": 1, "batch_size": 12})
        res = outcome.results
        assert res.params.total > 1_000_000
        # both use TTA (fast: 6 forward passes an image, resnet18: 2): the as-evaluated figures are measured
        # on the classifier with its TTA, the plain ones on one pass of the network. Counted, not timed (how
        # much slower that is: python -m benchmarks.eval_clock): every image the classifier was measured on
        # went through the network `passes` times, plus once more for the plain measurement
        assert res.hyperparameters["tta"] >= 1
        assert seen.classifier > 0 and seen.net == (1 + passes) * seen.classifier, (preset, vars(seen))
        assert res.evaluated_throughput_images_per_s != res.plain_throughput_images_per_s  # measured apart


def test_software_versions_are_plain_strings_and_none_where_absent(finished):
    import platform

    import lightning
    import torch
    import torchvision

    out, _, _ = finished
    software = json.loads((out / "results.json").read_text())["software"]
    assert software == {"python": platform.python_version(), "torch": torch.__version__,
                        "torchvision": torchvision.__version__, "lightning": lightning.__version__,
                        "cuda": None, "cudnn": None}  # a CPU run: no CUDA, no cuDNN, whatever torch was built with
    assert all(isinstance(v, str) for v in software.values() if v is not None)


def test_results_of_another_schema_version_are_refused_in_one_line(finished, tmp_path):
    from trainer.results import SchemaMismatch

    out, _, _ = finished
    old = json.loads((out / "results.json").read_text())
    old["schema_version"] = 1
    (tmp_path / "results.json").write_text(json.dumps(old))
    with pytest.raises(SchemaMismatch, match="has results schema_version 1; this platbench reads 3 and 2") as info:
        read_results(tmp_path)
    assert "\n" not in str(info.value)


def test_results_of_schema_2_read_as_one_process(finished, tmp_path):
    """Schema 3 only added hardware.world_size and .nodes; a schema-2 run was one process on one machine."""
    out, _, _ = finished
    old = json.loads((out / "results.json").read_text())
    old["schema_version"] = 2
    del old["hardware"]["world_size"], old["hardware"]["nodes"]
    (tmp_path / "results.json").write_text(json.dumps(old))
    r = read_results(tmp_path)
    assert r.schema_version == 3 and (r.hardware.world_size, r.hardware.nodes) == (1, 1)


def test_checkpoint_dir_of_another_run_is_refused(color_data, tmp_path):
    from trainer.errors import ConfigError

    train(color_data, tmp_path, overrides={"epochs": 1, "batch_size": 32})
    with pytest.raises(ConfigError, match="different seed"):
        train(color_data, tmp_path, seed=5, overrides={"epochs": 1, "batch_size": 32})


def _trainer_cmd(data: Path, out: Path, epochs: int) -> list[str]:
    return [sys.executable, "-m", "trainer", "train", "--data", str(data), "--out", str(out), "--epochs",
            str(epochs), "--batch-size", "8", "--device", "cpu"]


def test_sigterm_checkpoints_exits_143_and_resume_gives_the_same_result(color_data, tmp_path):
    """The preempted run is a process of its own (a real SIGTERM, its exit status); the uninterrupted reference
    and the resume run `python -m trainer train`'s entry in this process (tests/_cli.py), whose imports are paid:
    a resume is a new process reading the checkpoint, whichever process it is."""
    import torch

    epochs = 4
    out = tmp_path / "preempted"
    # one thread in every run, so that all three add their floats alike (and no thread spin-waits for a core)
    proc = subprocess.Popen(_trainer_cmd(color_data, out, epochs), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    try:
        ckpt = out / "checkpoints/last.ckpt"
        deadline = time.time() + 240
        while not ckpt.exists() and proc.poll() is None and time.time() < deadline:
            time.sleep(0.05)
        assert ckpt.exists(), "no epoch-end checkpoint appeared"
        proc.send_signal(signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:  # a failure above: not left training
            proc.kill()
    assert proc.returncode == EXIT_PREEMPTED, stderr
    assert "SIGTERM received" in stdout
    assert not (out / "results.json").exists()
    done_before = len(read_metrics(out))
    assert 1 <= done_before < epochs

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        resumed = trainer_here(*_trainer_cmd(color_data, out, epochs)[3:])
        reference = trainer_here(*_trainer_cmd(color_data, tmp_path / "ref", epochs)[3:])
    finally:
        torch.set_num_threads(threads)
    assert resumed.returncode == 0, resumed.stderr
    assert "Resuming from" in resumed.stdout
    assert reference.returncode == 0, reference.stderr[-3000:]
    a, b = read_results(tmp_path / "ref"), read_results(out)
    assert b.resumed_from_epoch == done_before and b.epochs_completed == epochs
    assert [e["epoch"] for e in read_metrics(out)] == list(range(1, epochs + 1))
    assert b.test_accuracy == a.test_accuracy and b.confusion_matrix == a.confusion_matrix
    assert [e["train_loss"] for e in read_metrics(out)] == pytest.approx([e["train_loss"] for e in read_metrics(
        tmp_path / "ref")], rel=1e-6)


def test_trainer_cli_bad_input_is_one_line(tmp_path):
    proc = run_cmd([str(VENV_BIN / "python"), "-m", "trainer", "train", "--data", str(tmp_path / "nope"),
                    "--out", str(tmp_path / "o")])
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip() == f"error: dataset folder {tmp_path / 'nope'} does not exist"
