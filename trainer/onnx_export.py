"""ONNX as a deployment target (issue 26, Roboflow's study): a trained model exported to ONNX and served by
onnxruntime on the CPU through the same server contract as the torch model (`python -m trainer serve
--runtime onnx`).

The graph exported is the whole prediction after decoding: uint8 NHWC images → normalisation with the card's
mean/std → the network at the card's test-time-augmentation level → softmax; so the server hands it the
decoded pixels, as it hands them to the torch model, and answers the same probabilities within float
tolerance. The batch dimension is dynamic. onnx, onnxruntime and onnxscript (torch's exporter) come with the
`onnx` extra; every import of them is inside a function, so the trainer and the CLI start without them."""
from __future__ import annotations

import importlib.util
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from trainer.errors import ConfigError
from trainer.inference import ImageError, LoadedModel, load_model

ONNX_FILE = "model.onnx"
OPSET = 18
_NEEDS = ("onnx", "onnxruntime", "onnxscript")


def require() -> None:
    """ConfigError naming the extra when a module ONNX needs is not installed (looked up, not imported)."""
    missing = [name for name in _NEEDS if importlib.util.find_spec(name) is None]
    if missing:
        raise ConfigError(f"the ONNX runtime needs {', '.join(missing)}: install the onnx extra "
                          f"(pip install 'platbench[onnx]')")


def export(model_dir: Path, dest: Path | None = None) -> Path:
    """Export MODEL_DIR (model.pt + model.json) to `dest` (default MODEL_DIR/model.onnx); returns the path."""
    import torch

    require()
    from trainer.data.batches import normalize
    from trainer.module import tta_logits

    model = load_model(model_dir, "cpu")
    dest = Path(dest) if dest is not None else Path(model_dir) / ONNX_FILE

    class Prediction(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.net = model.net
            self.register_buffer("mean", model.mean)
            self.register_buffer("std", model.std)

        def forward(self, images: torch.Tensor) -> torch.Tensor:
            logits = tta_logits(self.net, normalize(images, self.mean, self.std), model.tta)
            return torch.softmax(logits.float(), dim=1)

    size = model.image_size
    example = torch.zeros((2, size, size, 3), dtype=torch.uint8)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.tmp")
    with torch.inference_mode(False), torch.no_grad():
        program = torch.onnx.export(Prediction().eval(), (example,), dynamo=True, opset_version=OPSET,
                                    input_names=["images"], output_names=["probabilities"],
                                    dynamic_shapes=({0: torch.export.Dim("batch", min=1)},), verbose=False)
    program.save(str(tmp))
    tmp.replace(dest)
    return dest


@dataclass
class OnnxModel(LoadedModel):
    """A LoadedModel whose network is an onnxruntime session of the exported graph (`net`), on the CPU: the
    server's batching, decoding and answers (describe) are the torch model's."""

    def probabilities(self, images_uint8_nhwc: np.ndarray) -> np.ndarray:
        if images_uint8_nhwc.ndim != 4 or images_uint8_nhwc.shape[1:] != (self.image_size, self.image_size, 3):
            raise ImageError(f"expected images of shape (N, {self.image_size}, {self.image_size}, 3), "
                             f"got {tuple(images_uint8_nhwc.shape)}")
        return self.net.run(None, {"images": np.ascontiguousarray(images_uint8_nhwc, dtype=np.uint8)})[0]


def load_onnx_model(model_dir: Path, threads: int) -> OnnxModel:
    """An onnxruntime session (CPU, `threads` intra-op threads) of MODEL_DIR/model.onnx, exported from the
    torch model first when MODEL_DIR has none."""
    from trainer.inference import read_card

    require()
    import onnxruntime

    card = read_card(model_dir)
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    path = Path(model_dir) / ONNX_FILE
    if path.is_file():
        session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    else:  # exported for this server: the model dir may be read-only, and the session keeps the graph in memory
        with tempfile.TemporaryDirectory(prefix="platbench-onnx-") as scratch:
            path = export(model_dir, Path(scratch) / ONNX_FILE)
            session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return OnnxModel(net=session, card=card, device="cpu (onnxruntime)", mean=card["mean"], std=card["std"])
