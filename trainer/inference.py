"""The trained model artifact, loaded for prediction: `MODEL_DIR/model.pt` (a state_dict) and
`MODEL_DIR/model.json` (the model card written by `trainer.train.save_model`).

Prediction preprocesses exactly as the trainer evaluates: decode to RGB, resize to the card's image_size
with the same filter as `trainer/data/decode.py`, then `trainer/data/batches.normalize` (/255, (x-mean)/std,
NCHW) and `trainer.module.tta_logits` at the card's test-time-augmentation level. So a prediction here is
the prediction the trainer's test evaluation made for the same file.

Used by `serve` (trainer/serve.py), local batch inference (platforms/batch_inference.py) and the tests.
torch is imported inside the functions, so importing this module stays cheap."""
from __future__ import annotations

import base64
import binascii
import io
import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from PIL import Image, UnidentifiedImageError

from trainer.device import resolve_device  # serve and batch import it from here too
from trainer.errors import ConfigError
from trainer.results import MODEL_CARD, MODEL_WEIGHTS

ACCEPTED_FORMATS = ("PNG", "JPEG")
# An image is rejected before decoding when it declares more pixels than this: a small PNG can claim
# 50 000 × 50 000 pixels and would need gigabytes once decoded (Pillow only warns below 179 M pixels).
MAX_PIXELS = 4096 * 4096
DEFAULT_TOP_K = 5


class ImageError(ValueError):
    """The bytes or pixels of one image cannot be used; the message says why, for the client."""


class ImageTooLarge(ImageError):
    """The image declares more pixels than the server accepts."""


class ModelError(ConfigError):
    """The model directory is missing, incomplete or does not match its card."""


# ----------------------------------------------------------------------------------------- decoding
def _finish(img: Image.Image, size: int) -> np.ndarray:
    # The same steps, in the same order, as trainer/data/decode.py `decode_one`.
    img = img.convert("RGB")
    if img.size != (size, size):
        img = img.resize((size, size), Image.Resampling.BILINEAR)
    return np.asarray(img, dtype=np.uint8)


def decode_image(data: bytes, size: int, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """PNG or JPEG bytes → (size, size, 3) uint8 RGB, as the trainer decodes its image files."""
    if not data:
        raise ImageError("empty image: 0 bytes")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data), formats=ACCEPTED_FORMATS)
            width, height = img.size
            if width * height > max_pixels:
                raise ImageTooLarge(f"image is {width}×{height} pixels; at most {max_pixels} pixels are accepted")
            with img:
                img.load()
                return _finish(img, size)
    except ImageError:
        raise
    except UnidentifiedImageError:
        raise ImageError(f"not a PNG or JPEG image ({len(data)} bytes starting {data[:8]!r})") from None
    except (Image.DecompressionBombWarning, Image.DecompressionBombError) as exc:
        raise ImageTooLarge(f"image rejected as a decompression bomb: {exc}") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise ImageError(f"corrupt or truncated image: {exc}") from None


def image_from_pixels(pixels: Any, size: int, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """A nested list (H×W×3 RGB or H×W grey, values 0–255) → (size, size, 3) uint8, resized like a file."""
    try:
        arr = np.asarray(pixels, dtype=np.float64)
    except (ValueError, TypeError):
        raise ImageError("pixels must be a rectangular H×W×3 (RGB) or H×W (grey) array of numbers 0–255") from None
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] != 3) or 0 in arr.shape:
        raise ImageError(f"pixels have shape {list(arr.shape)}; expected H×W×3 (RGB) or H×W (grey)")
    if arr.shape[0] * arr.shape[1] > max_pixels:
        raise ImageTooLarge(f"pixels are {arr.shape[1]}×{arr.shape[0]}; at most {max_pixels} pixels are accepted")
    if not np.isfinite(arr).all() or arr.min() < 0 or arr.max() > 255:
        raise ImageError("pixel values must be numbers from 0 to 255")
    img = Image.fromarray(arr.round().astype(np.uint8))  # H×W → "L", H×W×3 → "RGB"
    return _finish(img, size)


def decode_b64(text: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ImageError("not valid base64") from None


def decode_instance(instance: Any, size: int, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """One element of a JSON `instances` list: {"b64": "..."} (Vertex AI's convention for binary
    data), {"image_bytes": {"b64": "..."}}, a bare base64 string, or a pixel array."""
    if isinstance(instance, dict):
        if "image_bytes" in instance and isinstance(instance["image_bytes"], dict):
            instance = instance["image_bytes"]
        if isinstance(instance.get("b64"), str):
            return decode_image(decode_b64(instance["b64"]), size, max_pixels)
        if "pixels" in instance:
            return image_from_pixels(instance["pixels"], size, max_pixels)
        raise ImageError('an instance object needs "b64" (base64 PNG/JPEG bytes) or "pixels" (H×W×3 array)')
    if isinstance(instance, str):
        return decode_image(decode_b64(instance), size, max_pixels)
    if isinstance(instance, list):
        return image_from_pixels(instance, size, max_pixels)
    raise ImageError(f"an instance must be an object, a base64 string or a pixel array, not {type(instance).__name__}")


# ------------------------------------------------------------------------------------------- model
@dataclass
class LoadedModel:
    net: Any                      # torch.nn.Module in eval mode on `device`
    card: dict
    device: Any                   # torch.device
    mean: Any = field(repr=False)  # torch tensors on `device`
    std: Any = field(repr=False)

    @property
    def classes(self) -> list[str]:
        return list(self.card["classes"])

    @property
    def image_size(self) -> int:
        return int(self.card["image_size"])

    @property
    def tta(self) -> int:
        return int(self.card.get("tta", 0))

    @property
    def name(self) -> str:
        return str(self.card["preset"])

    def probabilities(self, images_uint8_nhwc: np.ndarray) -> np.ndarray:
        """(N, size, size, 3) uint8 → (N, num_classes) float32 softmax of the trainer's TTA logits."""
        import torch

        from trainer.data.batches import normalize
        from trainer.module import tta_logits

        if images_uint8_nhwc.ndim != 4 or images_uint8_nhwc.shape[1:] != (self.image_size, self.image_size, 3):
            raise ImageError(f"expected images of shape (N, {self.image_size}, {self.image_size}, 3), "
                             f"got {tuple(images_uint8_nhwc.shape)}")
        with torch.inference_mode():
            x = torch.from_numpy(np.ascontiguousarray(images_uint8_nhwc)).to(self.device)
            logits = tta_logits(self.net, normalize(x, self.mean, self.std), self.tta)
            return torch.softmax(logits.float(), dim=1).cpu().numpy()

    def describe(self, probs: np.ndarray, top_k: int = DEFAULT_TOP_K) -> list[dict]:
        """Probabilities → one prediction per image: class, index, probability and the top k."""
        classes = self.classes
        k = max(1, min(int(top_k), len(classes)))
        order = np.argsort(-probs, axis=1, kind="stable")[:, :k]
        out = []
        for row, idx in zip(probs, order):
            top = [{"class": classes[i], "index": int(i), "probability": round(float(row[i]), 6)} for i in idx]
            out.append({**top[0], "top_k": top})
        return out

    def predict(self, images_uint8_nhwc: np.ndarray, top_k: int = DEFAULT_TOP_K) -> list[dict]:
        return self.describe(self.probabilities(images_uint8_nhwc), top_k)

    def predict_bytes(self, images: Sequence[bytes], top_k: int = DEFAULT_TOP_K) -> list[dict]:
        return self.predict(np.stack([decode_image(b, self.image_size) for b in images]), top_k)


CARD_KEYS = ("preset", "classes", "num_classes", "image_size", "mean", "std")


def read_card(model_dir: Path) -> dict:
    """The model card, checked; raises ModelError naming what is wrong. Needs no torch."""
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise ModelError(f"model directory {model_dir} does not exist")
    missing = [name for name in (MODEL_CARD, MODEL_WEIGHTS) if not (model_dir / name).is_file()]
    if missing:
        raise ModelError(f"{model_dir} is not a platbench model: missing {', '.join(missing)} "
                         f"(the trainer writes both into its --model-dir)")
    try:
        card = json.loads((model_dir / MODEL_CARD).read_text())
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot read {model_dir / MODEL_CARD}: {exc}") from None
    absent = [k for k in CARD_KEYS if k not in card] if isinstance(card, dict) else list(CARD_KEYS)
    if absent:
        raise ModelError(f"{model_dir / MODEL_CARD} lacks {', '.join(absent)}")
    if len(card["classes"]) != card["num_classes"]:
        raise ModelError(f"{model_dir / MODEL_CARD}: {len(card['classes'])} class names for num_classes="
                         f"{card['num_classes']}")
    return card


def default_threads() -> int:
    """torch intra-op threads for inference: half the CPUs this process may use (at least 1), so the
    HTTP event loop (serve) or the decoding threads (batch inference) keep the rest. Measured on 2 busy
    cores: with 2 threads, OpenMP workers spinning against other work made a batch of 256 images 4–10×
    slower than with 1."""
    import os

    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cpus = os.cpu_count() or 1
    return max(1, cpus // 2)


def warm_up(model: "LoadedModel", batch_sizes: Sequence[int] = (1,)) -> None:
    """Run the first forward passes (the first call on CPU takes seconds: kernels are chosen and memory
    laid out) so that timed or served calls don't pay for them."""
    for n in sorted(set(batch_sizes)):
        model.probabilities(np.zeros((n, model.image_size, model.image_size, 3), dtype=np.uint8))


def load_model(model_dir: Path, device: str = "cpu") -> LoadedModel:
    """Rebuild the preset's network, load the weights, and put it in eval mode on `device`."""
    import torch

    from trainer.models import get_preset

    model_dir = Path(model_dir)
    card = read_card(model_dir)
    dev = resolve_device(device)
    net = get_preset(card["preset"]).network(int(card["num_classes"]), int(card["image_size"]))
    try:
        state = torch.load(model_dir / MODEL_WEIGHTS, map_location="cpu", weights_only=True)
        net.load_state_dict(state)
    except (RuntimeError, OSError, ValueError, KeyError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelError(f"{model_dir / MODEL_WEIGHTS} does not fit preset {card['preset']!r} "
                         f"with {card['num_classes']} classes: {first}") from None
    net.eval().to(dev)
    if dev.type == "cuda":
        net = net.to(memory_format=torch.channels_last)
    mean = torch.tensor(card["mean"], dtype=torch.float32, device=dev)
    std = torch.tensor(card["std"], dtype=torch.float32, device=dev)
    return LoadedModel(net=net, card=card, device=dev, mean=mean, std=std)
