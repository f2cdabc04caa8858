"""Issue 28: `platbench platforms` calls docker ready only when a launch could start: the engine's socket
answers the Engine API's ping and an image is recorded (`platbench image build`). Offline: a unix socket on
this machine, no SDK import."""
from __future__ import annotations

import socket
import threading

import pytest

from platforms.core import readiness
from trainer.image_record import RECORD, ImageRecord


@pytest.fixture
def engine(tmp_path):
    """A unix socket answering GET /_ping as the Engine API does (200, body OK)."""
    path = tmp_path / "docker.sock"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen(4)

    def answer():
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            with conn:
                conn.recv(4096)
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nOK")

    threading.Thread(target=answer, daemon=True).start()
    yield f"unix://{path}"
    server.close()


def _record(folder):
    (folder / RECORD).parent.mkdir(parents=True)
    (folder / RECORD).write_text(ImageRecord(image="platbench:latest", id="sha256:" + "a" * 64).model_dump_json())


def test_no_engine_is_not_ready_and_says_so(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _record(tmp_path)
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path / 'absent.sock'}")
    row = readiness.of("docker")
    assert not row["credentials_ok"] and "no Docker engine answers" in row["credentials"]
    assert "docker: " in readiness.text([row]) and "not ready" in readiness.text([row])


def test_an_engine_without_a_recorded_image_is_not_ready(engine, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DOCKER_HOST", engine)
    row = readiness.of("docker")
    assert not row["credentials_ok"] and "platbench image build" in row["credentials"]


def test_an_engine_and_a_recorded_image_are_ready(engine, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DOCKER_HOST", engine)
    _record(tmp_path)
    row = readiness.of("docker")
    assert row["credentials_ok"], row["credentials"]
    assert "platbench:latest" in row["credentials"]
