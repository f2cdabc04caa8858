"""torchvision's classification families as presets (issue 26: enough points for a JumpStart-style frontier),
built for the dataset's class count and image size, and their optional ImageNet weights, fetched the way
torchvision fetches them: tested on weights the test writes itself into a TORCH_HOME (no hub is reachable)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from _cli import trainer_here
from conftest import assert_one_line_error
from trainer.errors import ConfigError
from trainer.models import PRESETS, TORCHVISION_FAMILIES, check_image_size, count_parameters


@pytest.fixture(autouse=True)
def one_thread():
    """Two spin-waiting torch threads on a shared 2-core machine made these steps 10× slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("name", ["resnet18", *TORCHVISION_FAMILIES])
def test_each_torchvision_preset_builds_and_takes_a_training_step(name):
    """Two 32×32 images of 7 classes through the network and back: the head has the dataset's classes and every
    trainable tensor gets a gradient."""
    torch.manual_seed(0)
    preset = PRESETS[name]
    net = preset.network(7, image_size=32)
    params = count_parameters(net)
    assert params["trainable"] == params["total"] == sum(p.numel() for p in net.parameters()) > 0
    logits = net.train()(torch.randn(2, 3, 32, 32))
    assert logits.shape == (2, 7)
    torch.nn.functional.cross_entropy(logits, torch.tensor([0, 6])).backward()
    assert all(p.grad is not None for p in net.parameters() if p.requires_grad)
    assert preset.torchvision_name == name and preset.hyperparameters.epochs == (30 if name == "resnet18" else 10)
    if preset.image_sized:  # ViT's position embeddings: one per 16×16 patch of the run's size, plus the class token
        assert (net.image_size, net.encoder.pos_embedding.shape[1]) == (32, 2 * 2 + 1)


def test_vit_refuses_an_image_size_without_whole_patches(tmp_path, digits_data):
    with pytest.raises(ConfigError, match="multiple of 16"):
        check_image_size("vit_b_16", 40)
    out = tmp_path / "out"
    proc = trainer_here("train", "--data", str(digits_data), "--out", str(out), "--device", "cpu",
                        "--model", "vit_b_16", "--image-size", "40")
    assert_one_line_error(proc)
    assert "multiple of 16" in proc.stderr and not out.exists()


@pytest.fixture
def torch_home(tmp_path, monkeypatch):
    """An empty torch.hub cache of the test's own ($TORCH_HOME/hub/checkpoints)."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    return tmp_path / "torch"


def test_pretrained_weights_come_from_the_torch_hub_cache_where_they_fit(torch_home):
    """ImageNet-shaped weights written where torchvision's weights API looks for them are loaded into every
    tensor of the same name and shape; the 1000-class head stays fresh for the dataset's 5 classes."""
    import torchvision

    from trainer.pretrained import cached_file, fetch

    torch.manual_seed(1)
    imagenet = torchvision.models.mobilenet_v3_small(num_classes=1000).state_dict()
    path = cached_file("mobilenet_v3_small")
    assert path.parent == torch_home / "hub" / "checkpoints" and path.name.startswith("mobilenet_v3_small-")
    path.parent.mkdir(parents=True)
    torch.save(imagenet, path)

    preset = PRESETS["mobilenet_v3_small"]
    torch.manual_seed(2)
    net = preset.network(5, 32, fetch(preset))
    state = net.state_dict()
    head = {"classifier.3.weight", "classifier.3.bias"}
    assert all(torch.equal(state[k], v) for k, v in imagenet.items() if k not in head)
    assert state["classifier.3.weight"].shape == (5, 1024)


def test_pretrained_weights_that_cannot_be_had_are_refused_in_one_line(torch_home, tmp_path, digits_data,
                                                                       monkeypatch):
    from trainer.pretrained import cached_file, fetch

    # no network: the download is refused at once (a proxy on a closed loopback port)
    monkeypatch.setenv("https_proxy", "http://127.0.0.1:9")
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")
    with pytest.raises(ConfigError, match=r"cannot be fetched from https://.*put the file at .*or run with pretrained=0"):
        fetch(PRESETS["efficientnet_b0"])
    # a truncated file in the cache
    path = cached_file("mobilenet_v3_small")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"PK\x03\x04 not a whole file")
    with pytest.raises(ConfigError, match="cannot be fetched") as refused:
        fetch(PRESETS["mobilenet_v3_small"])
    assert "\n" not in str(refused.value)
    # a preset with no torchvision weights, through the trainer: one line, no output folder
    out = tmp_path / "out"
    proc = trainer_here("train", "--data", str(digits_data), "--out", str(out), "--device", "cpu",
                        "--model", "small", "--pretrained", "1")
    assert_one_line_error(proc)
    assert "has no pretrained weights" in proc.stderr and not out.exists()


def test_vit_weights_for_another_resolution_are_interpolated_to_the_runs_image_size():
    """ViT's ImageNet position embeddings (224 px: 14×14 patches + the class token) are resampled to the run's
    patch grid by torchvision's own interpolate_embeddings; shown on a one-layer ViT of the same layout."""
    from torchvision.models.vision_transformer import VisionTransformer

    from trainer.pretrained import load_into

    def vit(image_size: int, classes: int) -> VisionTransformer:
        return VisionTransformer(image_size, 16, num_layers=1, num_heads=2, hidden_dim=8, mlp_dim=8,
                                 num_classes=classes)

    torch.manual_seed(0)
    imagenet = vit(224, 1000).state_dict()
    net = vit(32, 4)
    names = load_into(net, imagenet, 32)
    state = net.state_dict()
    assert state["encoder.pos_embedding"].shape == (1, 2 * 2 + 1, 8)
    assert torch.equal(state["encoder.pos_embedding"][:, :1], imagenet["encoder.pos_embedding"][:, :1])  # class token
    assert "encoder.pos_embedding" in names["loaded"] and set(names["kept"]) == {"heads.head.weight", "heads.head.bias"}
    assert torch.equal(state["conv_proj.weight"], imagenet["conv_proj.weight"])


def test_a_model_built_for_its_image_size_loads_at_that_size(tmp_path, monkeypatch):
    """A preset whose network is made for one input size (ViT's patch grid) is rebuilt for the size on the model
    card when served or evaluated, not at 32 px; shown on a one-layer ViT preset of the same layout at 48 px."""
    import json
    from dataclasses import replace

    from torchvision.models.vision_transformer import VisionTransformer

    from trainer import models
    from trainer.inference import load_model
    from trainer.results import MODEL_CARD, MODEL_WEIGHTS

    def tiny_vit(num_classes: int, image_size: int) -> VisionTransformer:
        return VisionTransformer(image_size, 16, num_layers=1, num_heads=2, hidden_dim=8, mlp_dim=8,
                                 num_classes=num_classes)

    monkeypatch.setitem(models.PRESETS, "tiny_vit", replace(models.PRESETS["vit_b_16"], name="tiny_vit", build=tiny_vit))
    torch.save(tiny_vit(3, 48).state_dict(), tmp_path / MODEL_WEIGHTS)
    (tmp_path / MODEL_CARD).write_text(json.dumps({"preset": "tiny_vit", "classes": ["a", "b", "c"], "num_classes": 3,
                                                   "image_size": 48, "mean": [0.5] * 3, "std": [0.25] * 3}))
    model = load_model(tmp_path)
    assert model.image_size == 48
    assert model.probabilities(np.zeros((2, 48, 48, 3), dtype=np.uint8)).shape == (2, 3)
