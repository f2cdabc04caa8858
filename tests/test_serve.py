"""`python -m trainer serve` as a real process on 127.0.0.1 under SageMaker's and Vertex AI's container
contracts: health and predict routes, every request format, every bad payload (4xx with a clear message,
and the server keeps serving), model-directory errors, and predictions identical to the trainer's."""
from __future__ import annotations

import base64
import io
import json
import subprocess

import numpy as np
import pytest
from PIL import Image

from _serving import (PYTHON, REPO, VERTEX_PREDICT, image_bytes, post_json, request, shared_server,
                            start_server, trained_model)


@pytest.fixture(scope="module")
def model(tmp_path_factory, digits_data):
    return trained_model(tmp_path_factory, digits_data)[0]


@pytest.fixture(scope="module")
def loaded(model):
    from trainer.inference import load_model

    return load_model(model)


@pytest.fixture(scope="module")
def sagemaker(request, tmp_path_factory, model):
    return shared_server(request, tmp_path_factory, "sagemaker", model)


@pytest.fixture(scope="module")
def vertex(request, tmp_path_factory, model):
    return shared_server(request, tmp_path_factory, "vertex", model)


def digit_png(digits_data, cls: str = "3", i: int = 0) -> bytes:
    return (digits_data / "test" / cls / f"{i:05d}.png").read_bytes()


def assert_serving(server, png: bytes) -> None:
    """The server still answers its health check and a good prediction."""
    status, _, _ = request("GET", server.base + server.health)
    assert status == 200
    status, _, body = request("POST", server.url, png, {"Content-Type": "image/png"})
    assert status == 200, body
    assert len(json.loads(body)["predictions"]) == 1


# ------------------------------------------------------------------------------------------ SageMaker
def test_sagemaker_ping_is_200_with_empty_body(sagemaker):
    status, headers, body = request("GET", sagemaker.base + "/ping")
    assert (status, body) == (200, b"")
    assert headers["x-platbench-model"].startswith("small; classes=10")


def test_sagemaker_invocations_png_matches_in_process_prediction(sagemaker, loaded, digits_data):
    png = digit_png(digits_data, "7", 2)
    status, headers, body = request("POST", sagemaker.url, png, {"Content-Type": "image/png", "Accept": "application/json"})
    assert status == 200, body
    assert headers["content-type"] == "application/json"
    (pred,) = json.loads(body)["predictions"]
    (expected,) = loaded.predict_bytes([png])
    assert pred["class"] == expected["class"] and pred["index"] == expected["index"]
    assert pred["probability"] == pytest.approx(expected["probability"], abs=1e-5)
    assert [c["class"] for c in pred["top_k"]] == [c["class"] for c in expected["top_k"]]
    probs = [c["probability"] for c in pred["top_k"]]
    assert len(probs) == 5 and probs == sorted(probs, reverse=True) and 0 < probs[0] <= 1
    assert pred["class"] in loaded.classes and pred["top_k"][0]["class"] == pred["class"]


def test_sagemaker_accepts_jpeg_x_image_and_custom_attribute_top_k(sagemaker):
    jpeg = image_bytes("JPEG", size=48, seed=1)
    status, _, body = request("POST", sagemaker.url, jpeg, {"Content-Type": "image/jpeg"})
    assert status == 200, body
    status, _, body = request("POST", sagemaker.url, jpeg, {"Content-Type": "application/x-image",
                                                            "X-Amzn-SageMaker-Custom-Attributes": "top_k=2"})
    assert status == 200, body
    assert len(json.loads(body)["predictions"][0]["top_k"]) == 2
    status, _, body = request("POST", sagemaker.url + "?top_k=1", jpeg, {"Content-Type": "image/jpeg"})
    assert len(json.loads(body)["predictions"][0]["top_k"]) == 1


def test_json_batch_every_instance_form_in_order(sagemaker, loaded, digits_data):
    pngs = [digit_png(digits_data, c) for c in ("0", "1", "2", "3")]
    b64 = [base64.b64encode(p).decode() for p in pngs]
    pixels = np.asarray(Image.open(io.BytesIO(pngs[3])).convert("RGB")).tolist()
    doc = {"instances": [{"b64": b64[0]}, b64[1], {"image_bytes": {"b64": b64[2]}}, pixels],
           "parameters": {"top_k": 3}}
    status, out = post_json(sagemaker.url, doc)
    assert status == 200, out
    expected = loaded.predict_bytes(pngs)
    assert [p["class"] for p in out["predictions"]] == [e["class"] for e in expected]
    assert all(len(p["top_k"]) == 3 for p in out["predictions"])


# ------------------------------------------------------------------------------------------ Vertex AI
def test_vertex_routes_port_and_storage_uri(vertex, loaded, digits_data):
    # one path (Vertex's default for both routes): GET is the health check, POST the prediction
    status, _, _ = request("GET", vertex.base + VERTEX_PREDICT)
    assert status == 200
    pngs = [digit_png(digits_data, c, 1) for c in ("4", "5", "6")]
    status, out = post_json(vertex.base + VERTEX_PREDICT,
                            {"instances": [{"b64": base64.b64encode(p).decode()} for p in pngs]})
    assert status == 200, out
    assert list(out) == ["predictions"]
    assert [p["class"] for p in out["predictions"]] == [e["class"] for e in loaded.predict_bytes(pngs)]
    # rawPredict-style: the image itself on the predict route
    status, _, body = request("POST", vertex.base + VERTEX_PREDICT, pngs[0], {"Content-Type": "image/png"})
    assert status == 200 and len(json.loads(body)["predictions"]) == 1
    assert f"predict /invocations, {VERTEX_PREDICT}" in vertex.output()


# ------------------------------------------------------------------------------------------ bad payloads
def _png_claiming(width: int, height: int) -> bytes:
    buf = io.BytesIO()
    Image.new("L", (width, height)).save(buf, format="PNG", optimize=False)
    return buf.getvalue()


SIX_MB = 6 * 1024 * 1024
BAD = {
    # name: (body, headers, chunked, expected status, words in the error)
    "oversize body": (b"\0" * (SIX_MB + 1), {"Content-Type": "image/png"}, False, 413, "at most 6291456 bytes"),
    "oversize chunked body": ([b"\0" * (1024 * 1024)] * 7, {"Content-Type": "image/png"}, True, 413, "exceeds 6291456"),
    "oversize chunked, last chunk over": ([b"\0" * (SIX_MB - 10), b"\0" * 100], {"Content-Type": "image/png"}, True, 413,
                                          "exceeds 6291456"),
    "not an image": (b"hello, world", {"Content-Type": "image/png"}, False, 400, "not a PNG or JPEG image"),
    "truncated png": (image_bytes("PNG", 64)[:300], {"Content-Type": "image/png"}, False, 400, "corrupt or truncated"),
    "gif is not accepted": (image_bytes("GIF"), {"Content-Type": "image/png"}, False, 400, "not a PNG or JPEG"),
    "empty body": (b"", {"Content-Type": "image/png"}, False, 400, "empty request body"),
    "text/plain": (image_bytes(), {"Content-Type": "text/plain"}, False, 415, "unsupported Content-Type 'text/plain'"),
    "multipart": (image_bytes(), {"Content-Type": "multipart/form-data; boundary=x"}, False, 415, "multipart/form-data"),
    "no content type": (image_bytes(), {}, False, 415, "no Content-Type"),
    "image/gif type": (image_bytes("GIF"), {"Content-Type": "image/gif"}, False, 415, "send image/png"),
    "accept html": (image_bytes(), {"Content-Type": "image/png", "Accept": "text/html"}, False, 406, "application/json only"),
    "invalid json": (b'{"instances": [', {"Content-Type": "application/json"}, False, 400, "not valid JSON"),
    "json without instances": (b'{"images": []}', {"Content-Type": "application/json"}, False, 400, '{"instances": [...]}'),
    "empty instances": (b'{"instances": []}', {"Content-Type": "application/json"}, False, 400, "non-empty list"),
    "bad base64": (b'{"instances": [{"b64": "@@@"}]}', {"Content-Type": "application/json"}, False, 400, "not valid base64"),
    "second instance not an image": (json.dumps({"instances": [base64.b64encode(image_bytes()).decode(),
                                                               base64.b64encode(b"nope").decode()]}).encode(),
                                     {"Content-Type": "application/json"}, False, 400, "instance 1: not a PNG or JPEG"),
    "bad pixels": (b'{"instances": [[[1, 2], [3]]]}', {"Content-Type": "application/json"}, False, 400, "instance 0"),
    "too many instances": (json.dumps({"instances": ["x"] * 1025}).encode(), {"Content-Type": "application/json"}, False,
                           413, "at most 1024"),
    "pixel bomb": (_png_claiming(5000, 5000), {"Content-Type": "image/png"}, False, 413, "pixels"),
    "top_k 0": (json.dumps({"instances": [base64.b64encode(image_bytes()).decode()], "parameters": {"top_k": 0}}).encode(),
                {"Content-Type": "application/json"}, False, 400, "top_k must be between 1 and 10"),
    "top_k words": (image_bytes(), {"Content-Type": "image/png", "X-Amzn-SageMaker-Custom-Attributes": "top_k=many"},
                    False, 400, "whole number"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_payload_is_4xx_with_a_clear_message_and_server_keeps_serving(sagemaker, digits_data, case):
    body, headers, chunked, status_expected, words = BAD[case]
    status, resp_headers, raw = request("POST", sagemaker.url, body, headers, chunked=chunked)
    assert status == status_expected, raw
    assert resp_headers["content-type"] == "application/json"
    message = json.loads(raw)["error"]
    assert words in message, message
    assert_serving(sagemaker, digit_png(digits_data))


def test_unknown_route_and_wrong_method_answer_json(sagemaker, digits_data):
    status, _, raw = request("POST", sagemaker.base + "/predict", image_bytes(), {"Content-Type": "image/png"})
    assert status == 404 and "POST /invocations" in json.loads(raw)["error"]
    status, _, raw = request("GET", sagemaker.base + "/invocations")
    assert status == 405 and "GET is not allowed" in json.loads(raw)["error"]
    assert_serving(sagemaker, digit_png(digits_data))


# ------------------------------------------------------------------------------------------ startup
def _serve(args, env_extra=None, timeout=60):
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIP_", "SAGEMAKER_", "PLATBENCH_MODEL"))}
    env.update(env_extra or {})
    return subprocess.run([PYTHON, "-m", "trainer", "serve", *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=timeout)


def test_missing_model_is_a_one_line_error(tmp_path):
    proc = _serve(["--model-dir", str(tmp_path / "nope")])
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [f"error: model directory {tmp_path / 'nope'} does not exist"]
    proc = _serve([], {"PLATBENCH_OPT_ML": str(tmp_path / "opt-ml")})
    assert proc.returncode == 2 and "no model: pass --model-dir" in proc.stderr
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "model.json").write_text("{}")
    proc = _serve(["--model-dir", str(tmp_path / "half")])
    assert proc.returncode == 2 and "missing model.pt" in proc.stderr


def test_weights_that_do_not_fit_stop_the_server_with_exit_1(tmp_path, model):
    import shutil

    import torch

    bad = tmp_path / "bad"
    shutil.copytree(model, bad)
    torch.save({"nothing": torch.zeros(1)}, bad / "model.pt")
    server = start_server("flag", bad, tmp_path / "srv", wait=False)
    try:
        server.proc.wait(90)
    finally:
        server.stop()
    assert server.proc.returncode == 1
    assert "does not fit preset 'small'" in server.output()


# ------------------------------------------------------------------------------------------ decoding
def test_decoding_matches_the_trainers_for_png_jpeg_grey_and_rgba(tmp_path):
    from trainer.data.decode import decode_one
    from trainer.inference import decode_image

    for i, (fmt, mode, size) in enumerate([("PNG", "RGB", 32), ("JPEG", "RGB", 45), ("PNG", "L", 8), ("PNG", "RGBA", 40)]):
        data = image_bytes(fmt, size, seed=i, mode=mode)
        path = tmp_path / f"{i}.{fmt.lower()}"
        path.write_bytes(data)
        assert np.array_equal(decode_image(data, 32), decode_one(path, 32)), (fmt, mode)


# ------------------------------------------------------------------------------------------ payload limits
def test_each_platform_gets_its_own_request_limit(vertex, sagemaker):
    """Issue 12 item 10: a Vertex AI public endpoint takes at most 1.5 MB per request, SageMaker's
    InvokeEndpoint 6 MB (6291456 bytes): `serve` answers 413 at its platform's limit, naming it."""
    body = b"\0" * 1_500_001
    status, _, raw = request("POST", vertex.base + VERTEX_PREDICT, body, {"Content-Type": "image/png"})
    assert status == 413
    assert "at most 1500000 bytes (Vertex AI's limit for a public endpoint)" in json.loads(raw)["error"]
    status, _, raw = request("POST", sagemaker.base + "/invocations", body, {"Content-Type": "image/png"})
    assert status != 413  # within SageMaker's 6 MB (the zero bytes are not an image: 4xx of another kind)
    from trainer.serve import SAGEMAKER_MAX_BODY, VERTEX_MAX_BODY, platform_max_body

    assert (SAGEMAKER_MAX_BODY, VERTEX_MAX_BODY) == (6291456, 1_500_000)
    assert platform_max_body({"AIP_PREDICT_ROUTE": "/p"}) == VERTEX_MAX_BODY and platform_max_body({}) == SAGEMAKER_MAX_BODY


def test_azureml_model_dir_is_read_at_its_root_or_in_the_registered_folder(tmp_path):
    """Azure ML mounts a model registered from a folder at AZUREML_MODEL_DIR/<folder name>/
    (how-to-deploy-custom-container); serve finds the card at the root or in that one subfolder."""
    from trainer.errors import ConfigError
    from trainer.serve import resolve_model_dir

    mount = tmp_path / "azureml-models" / "pb" / "1"
    (mount / "model").mkdir(parents=True)
    (mount / "model" / "model.json").write_text("{}")
    assert resolve_model_dir(None, {"AZUREML_MODEL_DIR": str(mount)}) == (mount / "model", None)
    (mount / "model.json").write_text("{}")
    assert resolve_model_dir(None, {"AZUREML_MODEL_DIR": str(mount)}) == (mount, None)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ConfigError, match="holds no model.json"):
        resolve_model_dir(None, {"AZUREML_MODEL_DIR": str(empty)})


# ------------------------------------------------------------------------------------------ platbench serve
def test_serve_listens_on_this_machine_only_unless_told(tmp_path):
    from trainer.serve import settings_from

    assert settings_from(["--model-dir", str(tmp_path)], env={}).host == "127.0.0.1"
    assert settings_from(["--model-dir", str(tmp_path), "--host", "0.0.0.0"], env={}).host == "0.0.0.0"


def test_platbench_serve_a_run_folder_then_load_it(tmp_path, model):
    """The README's pair: `platbench serve RUN` (a run folder: its model/ is served) and `platbench load`."""
    import os
    import sys
    from pathlib import Path

    from _serving import Server, free_port, wait_ready
    from stand_in.cli import platbench_here

    port = free_port()
    log = tmp_path / "serve.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIP_", "SAGEMAKER_", "PLATBENCH_SERVE_HOST"))}
    proc = subprocess.Popen([str(Path(sys.executable).parent / "platbench"), "serve", str(model.parent), "--port",
                             str(port), "--device", "cpu"], cwd=tmp_path, env=env, stdout=log.open("w"),
                            stderr=subprocess.STDOUT)
    server = Server(proc, port, log)
    try:
        wait_ready(server, timeout=120)
        assert f"on 127.0.0.1:{port}" in server.output()
        load = platbench_here("load", server.base, "-n", "20", "--warmup", "2", "--no-track", "--json", cwd=tmp_path)
        assert load.returncode == 0, load.stderr
        report = json.loads(load.stdout)
        assert report["summary"]["ok"] == 20 and report["summary"]["failed"] == 0
    finally:
        assert server.stop() == 0, server.output()
