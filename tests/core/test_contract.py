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
from stand_in.cli import platbench_here

from platforms.core import pricing, registry
from platforms.core.api import Feature

PLATFORMS = registry.names()
PY = sys.executable
CLOUD_VARS = ("AWS_", "GOOGLE_", "CLOUDSDK_", "STORAGE_EMULATOR", "MLFLOW_")


def _network_namespace() -> list[str]:
    """`unshare -n` where it works (root, or a container that grants it): a fresh network namespace has no
    interface but a down loopback, so a dry run that reaches for the network fails there."""
    if not shutil.which("unshare"):
        return []
    probe = subprocess.run(["unshare", "-n", "true"], capture_output=True)
    return ["unshare", "-n"] if probe.returncode == 0 else []


NO_NETWORK = _network_namespace()


def _bare_env(home) -> dict:
    """This environment without any cloud credentials or endpoints."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(CLOUD_VARS)}
    return {**env, "HOME": str(home), "AWS_EC2_METADATA_DISABLED": "true"}


def _here(args, cwd, home):
    """The same command in this process (tests/stand_in/cli.py), in the same bare environment."""
    return platbench_here(*args, cwd=cwd, env={"HOME": str(home), "AWS_EC2_METADATA_DISABLED": "true"},
                          drop=CLOUD_VARS)


def _platbench(args, cwd, env):
    return subprocess.run([PY, "-m", "platforms", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=180, stdin=subprocess.DEVNULL)


# Every platform's dry run in one process (the CLI's entry, tests/stand_in/cli.py), in one network namespace:
# the offline part needs the namespace, not a process each, whose start-up (~3 s of CPU: typer, rich, pydantic)
# was most of what this module cost. Each platform gets its own working folder and the same bare environment.
_DRY_RUNS = """
import json, sys, traceback
from pathlib import Path

sys.path.insert(0, sys.argv[1])
from stand_in.cli import platbench_here

out = {}
for name, work, data in json.loads(sys.argv[2]):
    try:
        r = platbench_here("launch", name, "--data", data, "--dry-run", cwd=Path(work))
        out[name] = [r.returncode, r.stdout, r.stderr]
    except BaseException:  # one platform's crash is its test's failure, not every platform's
        out[name] = [1, "", traceback.format_exc()]
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def dry_runs(tmp_path_factory, digits_data) -> dict[str, tuple[int, str, str, object]]:
    """name → (exit code, stdout, stderr, its working folder) of `platbench launch NAME --data D --dry-run`."""
    from pathlib import Path

    root = tmp_path_factory.mktemp("dry-runs")
    works = {name: root / name for name in PLATFORMS}
    for work in works.values():
        work.mkdir()
    jobs = [(name, str(work), str(digits_data)) for name, work in works.items()]
    tests = str(Path(__file__).resolve().parents[1])
    r = subprocess.run([*NO_NETWORK, PY, "-c", _DRY_RUNS, tests, json.dumps(jobs)], cwd=root, env=_bare_env(root),
                       capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL)
    assert r.returncode == 0, r.stderr[-3000:]
    return {name: (*got, works[name]) for name, got in json.loads(r.stdout.splitlines()[-1]).items()}


@pytest.mark.parametrize("name", PLATFORMS)
def test_dry_run_is_offline_needs_no_credentials_and_creates_nothing(name, dry_runs):
    """Where `unshare -n` cannot run (not root) the dry runs run without the isolation, still needing no
    credentials and creating nothing."""
    code, stdout, stderr, work = dry_runs[name]
    assert code == 0, stderr
    assert f"Plan for {name}" in stdout
    assert list(work.iterdir()) == [], "a dry run wrote files"
    spec = registry.spec(name)
    if Feature.REMOTE_STORAGE not in spec.lacks:
        assert "      $ " in stdout, "no equivalent CLI commands in the plan"
        # no credentials in this environment: the plan says what a real launch still needs
        assert "A real launch still needs:" in stdout and "credentials" in stdout
    for feature in spec.lacks:
        assert feature.value in stdout


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
    # in this process, but for the first platform: one run of the command through the console script
    if name == PLATFORMS[0]:
        def run(args):
            return _platbench(args, tmp_path, _bare_env(tmp_path))
    else:
        def run(args):
            return _here(args, tmp_path, tmp_path)
    r = run(["endpoint", name, "--dry-run"])
    if Feature.ENDPOINTS in spec.lacks:
        assert r.returncode == 2 and r.stderr.strip().count("\n") == 0
        assert spec.lacks[Feature.ENDPOINTS] in r.stderr
        r = run(["load", f"{name}:some-endpoint", "-n", "1"])
        assert r.returncode == 2 and r.stderr.strip().count("\n") == 0, r.stderr
    else:
        assert r.returncode == 0, r.stderr
        assert "nothing is created" in r.stdout


@pytest.mark.parametrize("name", PLATFORMS)
def test_a_bad_setting_is_one_line_exit_2(name, digits_data, tmp_path):
    # in this process (the dry-run test above runs `launch` through the console script for every platform)
    r = _here(["launch", name, "--data", str(digits_data), "--set", "no_such_setting=1", "--dry-run"], tmp_path,
              tmp_path)
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


@pytest.mark.parametrize("name", PLATFORMS)
def test_the_extra_a_platform_names_exists_and_builds_on_its_cloud(name):
    """`extra` defaults to the platform's name (PlatformSpec): pyproject.toml must define it, and a platform
    on a cloud (platforms/clouds) installs that cloud's extra through its own."""
    import re
    import tomllib
    from pathlib import Path

    spec = registry.spec(name)
    if spec.extra is None:
        assert not spec.sdk_modules, f"{name} needs {spec.sdk_modules} but names no extra"
        return
    extras = tomllib.loads((Path(__file__).resolve().parents[2] / "pyproject.toml").read_text())["project"][
        "optional-dependencies"]
    assert spec.extra in extras, f"pip install 'platbench[{spec.extra}]' names no extra of pyproject.toml"
    if spec.cloud is not None:
        assert spec.cloud.extra in extras
        brought = {e for r in extras[spec.extra] if (m := re.fullmatch(r"platbench\[([\w,-]+)\]", r))
                   for e in m[1].split(",")}
        assert spec.cloud.extra in brought | {spec.extra}, f"{spec.extra} does not build on {spec.cloud.extra}"
