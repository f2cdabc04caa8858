"""The fixtures every Databricks test module shares: a loopback workspace (one per module: it is cheap, so the
modules need not share a pytest-xdist worker) and the SDK's settings pointed at it, with nothing of the user's
~/.databrickscfg."""
from __future__ import annotations

import pytest
from databricks_server import DatabricksServer
from job_cluster import mount_namespace_problem


def workspace_server(*volumes: str):
    """A module-scoped `server` fixture: a workspace under the module's temporary folder with these volumes."""

    @pytest.fixture(scope="module")
    def server(tmp_path_factory):
        s = DatabricksServer(tmp_path_factory.mktemp("dbx-ws"))
        for v in volumes:
            s.create_volume(v)
        yield s
        s.close()

    return server


@pytest.fixture
def workspace(server, monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # no ~/.databrickscfg of the user's
    for var in ("DATABRICKS_CONFIG_PROFILE", "DATABRICKS_CONFIG_FILE", "DATABRICKS_CLIENT_ID"):
        monkeypatch.delenv(var, raising=False)
    for k, v in server.env().items():
        monkeypatch.setenv(k, v)
    server.runtime_env.clear()  # a module's server: no stand-in or fault of another test's
    server.faults.clear()
    return server


@pytest.fixture
def job_cluster(workspace):
    """The workspace, where its submitted runs can run (they need a private mount namespace for /Volumes)."""
    problem = mount_namespace_problem()
    if problem:
        pytest.skip(f"the loopback job cluster mounts /Volumes in a private namespace: {problem}")
    return workspace


def cli_refusal(capsys, monkeypatch, *args: str) -> str:
    """`platbench ARGS` in this process, through the console script's own entry (platforms.cli:main; a
    subprocess proves nothing more for a refusal): it must exit 2 with one line on stderr and no traceback;
    that line is returned."""
    import sys

    from platforms.cli import main

    monkeypatch.setattr(sys, "argv", ["platbench", *args])
    with pytest.raises(SystemExit) as exited:
        main()
    out, err = capsys.readouterr()
    assert exited.value.code == 2, (exited.value.code, out, err)
    assert "Traceback" not in out + err, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "error" in lines[0], err
    return lines[0]
