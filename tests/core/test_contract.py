"""What every registered platform promises (docs/design.md, "Adding a platform"), checked for each one the
registry finds: a dry run is offline and creates nothing; the registry imports no SDK; prices carry their
provenance; a lacked feature and a bad setting are refused with one line, exit 2."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from platforms.core import pricing, registry
from platforms.core.api import Feature

PLATFORMS = registry.names()
PY = sys.executable
# a dry run must work in a fresh network namespace (no interface but a down loopback): root only
NO_NETWORK = ["unshare", "-n"] if os.geteuid() == 0 and shutil.which("unshare") else []


def _bare_env(home) -> dict:
    """This environment without any cloud credentials or endpoints."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AWS_", "GOOGLE_", "CLOUDSDK_", "STORAGE_EMULATOR", "MLFLOW_"))}
    return {**env, "HOME": str(home), "AWS_EC2_METADATA_DISABLED": "true"}


def _platbench(args, cwd, env, offline=False):
    return subprocess.run([*(NO_NETWORK if offline else []), PY, "-m", "platforms", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=180, stdin=subprocess.DEVNULL)


@pytest.mark.parametrize("name", PLATFORMS)
def test_dry_run_is_offline_needs_no_credentials_and_creates_nothing(name, digits_data, tmp_path):
    if not NO_NETWORK:
        pytest.skip("unshare -n needs root: the offline part of this check cannot run here")
    work = tmp_path / "work"
    work.mkdir()
    r = _platbench(["launch", name, "--data", str(digits_data), "--dry-run"], work, _bare_env(tmp_path), offline=True)
    assert r.returncode == 0, r.stderr
    assert f"Plan for {name}" in r.stdout
    assert list(work.iterdir()) == [], "a dry run wrote files"
    spec = registry.spec(name)
    if Feature.REMOTE_STORAGE not in spec.lacks:
        assert "      $ " in r.stdout, "no equivalent CLI commands in the plan"
        # no credentials in this environment: the plan says what a real launch still needs
        assert "A real launch still needs:" in r.stdout and "credentials" in r.stdout
    for feature in spec.lacks:
        assert feature.value in r.stdout


def test_listing_platforms_imports_no_sdk_and_no_heavy_library():
    code = ("import sys; from platforms.core import registry; from platforms.core import readiness; "
            "[readiness.of(n) for n in registry.names()]; "
            "print([m for m in sys.modules if m.split('.')[0] in ('boto3', 'botocore', 'sagemaker', 'torch', "
            "'lightning', 'mlflow') or m.startswith(('google.cloud.aiplatform', 'google.cloud.storage'))])")
    out = subprocess.run([PY, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"


@pytest.mark.parametrize("name", PLATFORMS)
def test_every_price_entry_has_source_date_and_status(name):
    table = pricing.table(name)
    if Feature.BILLING not in registry.spec(name).lacks or table:
        assert table.get("training"), f"{name} bills but has no training prices"
    for section, regions in table.items():
        for region, skus in regions.items():
            for sku, entry in skus.items():
                assert entry["source"].startswith("https://"), (section, region, sku)
                assert entry["status"] in ("verified", "unverified"), (section, region, sku)
                assert len(str(entry["date"])) == 10, (section, region, sku)


@pytest.mark.parametrize("name", PLATFORMS)
def test_a_lacked_endpoint_is_refused_with_one_line(name, tmp_path):
    spec = registry.spec(name)
    r = _platbench(["endpoint", name, "--dry-run"], tmp_path, _bare_env(tmp_path))
    if Feature.ENDPOINTS in spec.lacks:
        assert r.returncode == 2 and r.stderr.strip().count("\n") == 0
        assert spec.lacks[Feature.ENDPOINTS] in r.stderr
        r = _platbench(["load", f"{name}:some-endpoint", "-n", "1"], tmp_path, _bare_env(tmp_path))
        assert r.returncode == 2 and r.stderr.strip().count("\n") == 0, r.stderr
    else:
        assert r.returncode == 0, r.stderr
        assert "nothing is created" in r.stdout


@pytest.mark.parametrize("name", PLATFORMS)
def test_a_bad_setting_is_one_line_exit_2(name, digits_data, tmp_path):
    r = _platbench(["launch", name, "--data", str(digits_data), "--set", "no_such_setting=1", "--dry-run"],
                   tmp_path, _bare_env(tmp_path))
    assert r.returncode == 2, r.stdout
    assert r.stderr.strip().count("\n") == 0 and "Traceback" not in r.stderr


def test_platforms_command_reports_sdk_credentials_and_lacks(tmp_path):
    r = _platbench(["platforms", "--json"], tmp_path, _bare_env(tmp_path))
    rows = {row["platform"]: row for row in json.loads(r.stdout)}
    assert set(rows) == set(PLATFORMS)
    for name, row in rows.items():
        spec = registry.spec(name)
        assert row["lacks"] == {f.value: why for f, why in spec.lacks.items()}
        if spec.credentials:
            assert row["credentials_ok"] is False  # a bare HOME holds none


@pytest.mark.parametrize("name", PLATFORMS)
def test_a_named_first_run_guide_exists(name):
    from pathlib import Path

    guide = registry.spec(name).guide
    if guide:
        assert (Path(__file__).resolve().parents[2] / guide).is_file(), guide
