"""`platbench check` on a run folder and on a tracked run: a launch records the checker's verdict, a
tampered run fails with one line per problem and is tagged so the report leaves it out."""
from __future__ import annotations

import json

from conftest import platbench


def test_a_launch_is_checked_and_a_tampered_copy_fails(digits_data, tmp_path):
    out = tmp_path / "run"
    proc = platbench("launch", "local", "--data", str(digits_data), "--epochs", "2", "--out", str(out), "--json",
                     cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    run_id = json.loads(proc.stdout)["mlflow_run_id"]
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    assert client.get_run(run_id).data.tags["platbench.check"] == "passed"

    ok = platbench("check", str(out), cwd=tmp_path)
    assert ok.returncode == 0 and "ok: " in ok.stdout, ok.stdout + ok.stderr
    ok = platbench("check", run_id[:8], cwd=tmp_path)
    assert ok.returncode == 0 and f"ok: run {run_id[:8]}" in ok.stdout, ok.stdout + ok.stderr

    results = json.loads((out / "results.json").read_text())
    results["test_accuracy"] = 0.999
    (out / "results.json").write_text(json.dumps(results))
    log = (out / "train.log").read_text().splitlines()
    (out / "train.log").write_text("\n".join(line for line in log if not line.startswith("- Test top-5")) + "\n")
    bad = platbench("check", str(out), cwd=tmp_path)
    assert bad.returncode == 1
    lines = bad.stdout.strip().splitlines()
    assert any("test_accuracy" in line for line in lines) and any("top-5" in line for line in lines)
    assert all("Traceback" not in line for line in lines)


def test_check_of_nothing_is_one_line(tmp_path):
    proc = platbench("check", str(tmp_path / "nope"), cwd=tmp_path)
    assert proc.returncode == 2 and proc.stderr.strip().count("\n") == 0, proc.stderr
    assert "no such run folder" in proc.stderr and not (tmp_path / "mlflow.db").exists()
