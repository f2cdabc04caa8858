"""Azurite, the official Azure Storage emulator (npm package `azurite`), started on 127.0.0.1 for the Azure
ML tests: its blob service on a free port, its data in memory, and the well-known development
account (devstoreaccount1) as an AZURE_STORAGE_CONNECTION_STRING.
https://learn.microsoft.com/azure/storage/common/storage-use-azurite

Found on PATH, or in .ci/azurite-npm (where .ci/run installs it); the tests skip, saying so, only when
neither Azurite nor node/npm is there. Imported by name from tests/azureml (no __init__.py there)."""
from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ACCOUNT = "devstoreaccount1"
# the emulator's published development key (storage-use-azurite, "Well-known storage account and key")
KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


def azurite_blob() -> str | None:
    local = REPO / ".ci" / "azurite-npm" / "node_modules" / ".bin" / "azurite-blob"
    if local.exists():
        return str(local)
    return shutil.which("azurite-blob")


def install_azurite() -> str | None:
    """npm install into .ci/azurite-npm, as .ci/run does, under a lock: pytest-xdist workers start their own
    Azurite each and must not run npm into one folder at once. None without node/npm. (On Node 20, npm picks
    azurite 3.35.0, the newest release whose engines allow it.)"""
    import fcntl

    if not (shutil.which("node") and shutil.which("npm")):
        return None
    folder = REPO / ".ci" / "azurite-npm"
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / ".install.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if azurite_blob() is None:
            subprocess.run(["npm", "install", "--silent", "--prefix", str(folder), "azurite@3"], check=False,
                           capture_output=True, timeout=300)
    return azurite_blob()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def azurite():
    exe = azurite_blob() or install_azurite()
    if exe is None:
        pytest.skip("Azurite is not installed and node/npm are missing: `npm install --prefix .ci/azurite-npm "
                    "azurite` (the Azure Blob tests need the official emulator)")
    port = _free_port()
    # strict (no --loose: an unsupported header or query parameter is refused, as by Blob Storage), with one
    # exception: azure-storage-blob 12.31.1 sends x-ms-version 2026-10-06, newer than any Azurite release
    # accepts (3.35.0, the newest for Node 20: 2025-11-05; 3.37.0, Node 22: 2026-06-06), so the version check
    # alone is skipped. Drop --skipApiVersionCheck once an Azurite release lists the SDK's version.
    # --inMemoryPersistence: nothing the tests write needs a disk (no database and extent files to write, and
    # nothing to flush at exit)
    proc = subprocess.Popen([exe, "--blobHost", "127.0.0.1", "--blobPort", str(port), "--inMemoryPersistence",
                             "--skipApiVersionCheck", "--silent"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    deadline = time.time() + 60
    while time.time() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"Azurite exited: {proc.stderr.read().decode()[-500:]}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            time.sleep(0.2)
    else:
        proc.terminate()
        pytest.fail("Azurite did not start listening within 60 s")
    url = f"http://127.0.0.1:{port}/{ACCOUNT}"
    yield f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={KEY};BlobEndpoint={url};"
    # killed, not terminated: its data is in memory and goes anyway, and on SIGTERM it waits for the SDK's idle
    # keep-alive connections to close (a session's teardown waited out a 10 s timeout for it)
    proc.kill()
    proc.wait(timeout=30)


@pytest.fixture
def blob_env(azurite, monkeypatch, tmp_path):
    """azure-storage-blob pointed at Azurite; no Azure credentials anywhere else."""
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", azurite)
    for var in ("AZURE_CLIENT_ID", "AZURE_TENANT_ID", "AZURE_CLIENT_SECRET", "AZURE_STORAGE_ACCOUNT",
                "AZURE_SUBSCRIPTION_ID"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AZURE_CONFIG_DIR", str(tmp_path / "no-azure-cli"))
    return azurite


def new_container(conn: str) -> str:
    import secrets

    from azure.storage.blob import BlobServiceClient

    name = f"pb-{secrets.token_hex(4)}"
    BlobServiceClient.from_connection_string(conn).create_container(name)
    return name
