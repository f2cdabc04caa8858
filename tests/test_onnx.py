"""ONNX as a deployment target (issue 26, Roboflow's study): the session's trained digits model exported to
ONNX answers as the torch model does, and `python -m trainer serve --runtime onnx` serves it through the same
contract (routes, request forms, answers within float tolerance)."""
from __future__ import annotations

import base64
import json
import sys

import numpy as np
import pytest

from _serving import post_json, request, start_server, trained_model
from trainer.errors import ConfigError


@pytest.fixture(scope="module")
def model(tmp_path_factory, digits_data):
    return trained_model(tmp_path_factory, digits_data)[0]


@pytest.fixture(scope="module")
def exported(tmp_path_factory, model):
    """(path of the exported graph, the torch model): exported once for the module."""
    import torch

    from trainer.inference import load_model
    from trainer.onnx_export import export

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # two spin-waiting threads on a shared 2-core machine: several times the CPU
    try:
        return export(model, tmp_path_factory.mktemp("onnx") / "model.onnx"), load_model(model)
    finally:
        torch.set_num_threads(threads)


def test_the_exported_graph_gives_the_torch_models_probabilities(exported, digits_data):
    import onnx
    import onnxruntime

    from trainer.data import cache

    path, torch_model = exported
    graph = onnx.load(str(path))
    onnx.checker.check_model(graph)
    assert [i.name for i in graph.graph.input] == ["images"]
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    images = cache.load(digits_data).x_test[:37]  # any batch size: the batch dimension is dynamic
    got = session.run(None, {"images": images})[0]
    want = torch_model.probabilities(images)
    np.testing.assert_allclose(got, want, atol=1e-5)
    assert (got.argmax(1) == want.argmax(1)).all()


def test_serve_runtime_onnx_answers_as_the_torch_model(tmp_path, model, exported, digits_data):
    """A real `trainer serve --runtime onnx` on a copy of the model dir holding the exported model.onnx: the
    SageMaker routes, a PNG body and a JSON batch, each answer the torch model's prediction."""
    import shutil

    from trainer.onnx_export import ONNX_FILE

    served = tmp_path / "model"
    shutil.copytree(model, served)
    shutil.copy(exported[0], served / ONNX_FILE)
    torch_model = exported[1]
    pngs = [(digits_data / "test" / c / "00000.png").read_bytes() for c in ("1", "3", "8")]
    want = torch_model.predict_bytes(pngs, top_k=3)

    server = start_server("flag", served, tmp_path / "srv", extra_args=["--runtime", "onnx", "--threads", "1"])
    try:
        status, headers, body = request("POST", server.url, pngs[1], {"Content-Type": "image/png"})
        assert status == 200, body
        assert headers["x-platbench-runtime"] == "onnx"
        one = json.loads(body)["predictions"][0]
        assert one["class"] == want[1]["class"]
        assert one["probability"] == pytest.approx(want[1]["probability"], abs=1e-4)
        status, doc = post_json(server.url, {"instances": [{"b64": base64.b64encode(p).decode()} for p in pngs],
                                             "parameters": {"top_k": 3}})
        assert status == 200, doc
        for got, expected in zip(doc["predictions"], want):
            assert [t["class"] for t in got["top_k"]] == [t["class"] for t in expected["top_k"]]
            for g, e in zip(got["top_k"], expected["top_k"]):
                assert g["probability"] == pytest.approx(e["probability"], abs=1e-4)
    finally:
        assert server.stop() == 0, server.output()


def test_without_the_extra_the_onnx_runtime_is_refused_in_one_line(tmp_path, model, monkeypatch):
    from trainer.serve import settings_from

    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # as if the onnx extra were not installed
    with pytest.raises(ConfigError) as refused:
        settings_from(["--model-dir", str(model), "--runtime", "onnx"], env={})
    assert str(refused.value) == ("the ONNX runtime needs onnxruntime: install the onnx extra "
                                  "(pip install 'platbench[onnx]')")
    monkeypatch.delitem(sys.modules, "onnxruntime")
    with pytest.raises(ConfigError, match="serves on the CPU"):
        settings_from(["--model-dir", str(model), "--runtime", "onnx", "--device", "cuda"], env={})
    assert settings_from(["--model-dir", str(model)], env={}).runtime == "torch"
