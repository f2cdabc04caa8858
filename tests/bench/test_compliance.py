"""`platbench check` on a run folder and on a tracked run: a launch records the checker's verdict, a
tampered run fails with one line per problem and is tagged so the report leaves it out. The launch runs the
stand-in trainer (tests/stand_in), which writes the trainer's files with the trainer's own code: the check is
platbench's; a real trainer's run passing it is tests/test_check.py's test_a_real_digits_run_passes."""
from __future__ import annotations

import json

from conftest import platbench
from stand_in import stand_in  # noqa: F401 (fixture)
from stand_in.cli import platbench_here


def test_a_launch_is_checked_and_a_tampered_copy_fails(stand_in, tmp_path):
    out = tmp_path / "run"
    proc = platbench("launch", "local", "--data", str(stand_in.data), "--epochs", "2", "--out", str(out), "--json",
                     cwd=tmp_path, env=stand_in.env())
    assert proc.returncode == 0, proc.stderr
    run_id = json.loads(proc.stdout)["mlflow_run_id"]
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    assert client.get_run(run_id).data.tags["platbench.check"] == "passed"

    # `check` in this process (tests/stand_in/cli.py); its subprocess form: test_check_of_nothing_is_one_line
    ok = platbench_here("check", str(out), cwd=tmp_path)
    assert ok.returncode == 0 and "ok: " in ok.stdout, ok.stdout + ok.stderr
    ok = platbench_here("check", run_id[:8], cwd=tmp_path)
    assert ok.returncode == 0 and f"ok: run {run_id[:8]}" in ok.stdout, ok.stdout + ok.stderr

    results = json.loads((out / "results.json").read_text())
    results["test_accuracy"] = 0.999
    (out / "results.json").write_text(json.dumps(results))
    log = (out / "train.log").read_text().splitlines()
    (out / "train.log").write_text("\n".join(line for line in log if not line.startswith("- Test top-5")) + "\n")
    bad = platbench_here("check", str(out), cwd=tmp_path)
    assert bad.returncode == 1
    lines = bad.stdout.strip().splitlines()
    assert any("test_accuracy" in line for line in lines) and any("top-5" in line for line in lines)
    assert all("Traceback" not in line for line in lines)


def test_check_of_nothing_is_one_line(tmp_path):
    proc = platbench("check", str(tmp_path / "nope"), cwd=tmp_path)
    assert proc.returncode == 2 and proc.stderr.strip().count("\n") == 0, proc.stderr
    assert "no such run folder" in proc.stderr and not (tmp_path / "mlflow.db").exists()


def test_a_tracked_run_is_checked_again_as_its_launch_was(stand_in, tmp_path, monkeypatch):
    """`platbench check RUN` checks a tracked run the way its launch did, from what the launch told the checker
    (the run's platbench.in_image tag), not from which platform it was: a cloud launcher's native local mode
    ran outside the image (container=False), so neither check asks it for an image digest. The run folder is
    the stand-in's golden run (a real trainer's, which the first test needs anyway: one session training
    for this module, not two)."""
    import shutil

    from platforms.bench.compliance import check
    from platforms.core import tracking

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    out = tmp_path / "run"
    shutil.copytree(stand_in.golden, out)
    results = json.loads((out / "results.json").read_text())
    results.update(platform="sagemaker", image_digest=None)  # a platform whose jobs run the image, no digest
    (out / "results.json").write_text(json.dumps(results))
    ids = {}
    for container in (False, None):
        with tracking.tracked_run(f"compliance-{container}", {}, {tracking.Tag.PLATFORM: "sagemaker"}) as run:
            run.import_outputs(out, container=container)
            run.end("FINISHED")
            ids[container] = run.run_id
    native = tracking.client().get_run(ids[False]).data.tags
    assert native[tracking.Tag.CHECK] == "passed" and native[tracking.Tag.IN_IMAGE] == "false"
    assert check(ids[False], None)[1] == []
    assert any("image_digest" in line for line in check(ids[None], None)[1])
