"""Hugging Face AutoTrain is listed as not measurable, with its reason (platforms/autotrain/__init__.py):
`platbench platforms` says why, a dry run says why and creates nothing, a launch or sweep is one line, exit 2.
In this process (tests/stand_in/cli.py), but the launch's refusal through the real entry point."""
from __future__ import annotations

import json

from stand_in.cli import platbench_here
from conftest import assert_one_line_error, platbench


def test_listed_with_the_reason_and_never_launched(color_data, tmp_path):
    rows = {r["platform"]: r for r in json.loads(platbench_here("platforms", "--json", cwd=tmp_path).stdout)}
    assert {"autotrain", "nyckel", "rekognition"} <= {n for n, r in rows.items() if r["kind"] == "service"}
    assert "autotrain-advanced#340" in rows["autotrain"]["not_measurable"]
    assert rows["nyckel"]["not_measurable"] is None
    text = platbench_here("platforms", cwd=tmp_path).stdout
    assert "autotrain: Hugging Face AutoTrain (AutoML service" in text and "  not measurable: the hosted" in text
    dry = platbench_here("launch", "autotrain", "--data", str(color_data), "--dry-run", cwd=tmp_path)
    assert dry.returncode == 0 and "not measurable" in dry.stdout
    for run, args in ((platbench, ["launch", "autotrain", "--data", str(color_data)]),
                      (platbench_here, ["sweep", "--data", str(color_data), "-p", "autotrain", "--seeds", "0"])):
        r = run(*args, cwd=tmp_path)
        assert_one_line_error(r)
        assert r.returncode == 2 and "autotrain is not measurable" in r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) in ([], ["mlflow.db"])  # no run was started
