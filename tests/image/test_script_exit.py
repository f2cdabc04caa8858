"""scripts/image-test's exit status where it cannot run (issue 29): 77 ("skipped", with the reason on one line)
outside CI; under CI=true exit 1 with the same reason, so a machine that could not run the image test can
never turn CI green. Every "cannot run here" in the script (not root, no apt-get, an apt install or the
Compose download failing, no engine starting) goes through the same skip(); the two checks it makes first are
reached here without an engine, apt or root: a stand-in `id` and a PATH that holds only what the script runs
before them."""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from conftest import REPO

SCRIPT = REPO / "scripts" / "image-test"
NOT_ROOT = "it starts its own Docker engine and needs root (run it as root)"
NO_APT = "no apt-get to install the engine (docker.io) on this machine"


def run_script(tmp_path: Path, uid: int, ci: str | None) -> subprocess.CompletedProcess:
    """The script with PATH = a folder of bash, dirname and date, and an `id` that says `uid` (no apt-get)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("bash", "dirname", "date"):
        (bin_dir / tool).symlink_to(next(Path(d) / tool for d in ("/usr/bin", "/bin") if (Path(d) / tool).exists()))
    (bin_dir / "id").write_text(f"#!/bin/sh\necho {uid}\n")
    (bin_dir / "id").chmod(0o755)
    env = {"PATH": str(bin_dir), "HOME": str(tmp_path)}
    if ci is not None:
        env["CI"] = ci
    return subprocess.run([str(SCRIPT)], env=env, capture_output=True, text=True, timeout=60, cwd=tmp_path)


@pytest.mark.parametrize("uid, reason", [(1000, NOT_ROOT), (0, NO_APT)], ids=["not-root", "no-apt-get"])
def test_cannot_run_here_is_77_outside_ci(tmp_path, uid, reason):
    proc = run_script(tmp_path, uid, ci=None)
    assert proc.returncode == 77, proc.stdout + proc.stderr
    assert proc.stdout.splitlines() == [f"image test: SKIPPED: {reason}"] and not proc.stderr


@pytest.mark.parametrize("ci", ["true", "TRUE"])
@pytest.mark.parametrize("uid, reason", [(1000, NOT_ROOT), (0, NO_APT)], ids=["not-root", "no-apt-get"])
def test_cannot_run_here_fails_under_ci(tmp_path, uid, reason, ci):
    proc = run_script(tmp_path, uid, ci=ci)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert proc.stdout.splitlines() == [f"image test: FAILED: not run under CI=true: {reason}"] and not proc.stderr
    assert "SKIPPED" not in proc.stdout


def test_ci_other_than_true_is_not_ci(tmp_path):
    """The same reading of CI as tests/conftest.py (only "true", any case)."""
    assert run_script(tmp_path, 1000, ci="false").returncode == 77
