"""Fixtures of tests/vertex (imported by name, as conftest_clouds' are: a conftest.py here would shadow
tests/conftest.py's helpers): the loopback Vertex AI server (vertex_server.py), with Application Default Credentials
that it accepts: a service-account key file it issued, named by GOOGLE_APPLICATION_CREDENTIALS, so the SDK
signs every call as it would against the service. One server per test: it starts in milliseconds, and its
jobs and records belong to that test."""
from __future__ import annotations

import pytest
from conftest_clouds import gcs, gcs_server, new_bucket_name  # noqa: F401 (fixtures)


def start_vertex(tmp_path, monkeypatch, **kwargs):
    from vertex_server import VertexServer

    server = VertexServer(tmp_path / "vertex-api", **kwargs)
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(server.key_file(tmp_path / "service-account.json")))
    return server


@pytest.fixture
def job_service(tmp_path, monkeypatch, gcs):
    """The server's JobService side; the jobs it runs read and write the Cloud Storage emulator."""
    server = start_vertex(tmp_path, monkeypatch)
    yield server
    server.close()


@pytest.fixture
def bucket_in(gcs):
    """bucket_in(location): a new emulator bucket reporting `location` (the emulator ignores location on insert
    and takes it through a PATCH; real buckets get it at creation and keep it)."""
    from google.cloud import storage

    def make(location: str) -> str:
        name = new_bucket_name()
        b = storage.Client(project="test").create_bucket(name)
        b._patch_property("location", location)
        b.patch()
        return name

    return make
