"""torchvision's ImageNet weights for a preset's network (`--hp pretrained=1`), fetched the way torchvision
fetches them: its weights API names the file, torch.hub downloads it once into $TORCH_HOME/hub/checkpoints
and reads it from there afterwards (so a machine without a network runs on weights put there beforehand).

What is loaded: every tensor whose name and shape match the network. The class head (made for the
dataset's class count) and a CIFAR stem (resnet18's 3×3 first conv) keep their fresh initialisation; ViT's
position embeddings are interpolated to the run's image size as torchvision does for a new resolution."""
from __future__ import annotations

import pickle
from pathlib import Path

from torch import nn

from trainer.errors import ConfigError


def _weights(name: str):
    """torchvision's default ImageNet weights of builder `name`."""
    import torchvision.models

    return torchvision.models.get_model_weights(name).DEFAULT


def cached_file(name: str) -> Path:
    """Where torch.hub keeps the weights of builder `name` ($TORCH_HOME/hub/checkpoints/<file of the URL>)."""
    import torch.hub

    return Path(torch.hub.get_dir()) / "checkpoints" / _weights(name).url.rsplit("/", 1)[-1]


def _fetch(name: str) -> dict:
    weights = _weights(name)
    try:
        # as torchvision's builders call it; tensors only: the file is read with torch's restricted unpickler
        return weights.get_state_dict(progress=False, check_hash=True, weights_only=True)
    # no network (URLError is an OSError), a download whose hash differs (RuntimeError), a cached file that is
    # truncated or not a state dict of tensors: each says the same to the user
    except (OSError, RuntimeError, pickle.UnpicklingError, EOFError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(f"pretrained weights for {name} cannot be fetched from {weights.url} ({first[:160]}); "
                          f"put the file at {cached_file(name)} or run with pretrained=0") from None


def fetch(preset) -> dict:
    """The ImageNet state dict of the preset's torchvision builder; ConfigError in one line when the preset
    has none or the file can neither be found in the cache nor downloaded."""
    name = preset.torchvision_name
    if name is None:
        raise ConfigError(f"model {preset.name} has no pretrained weights; pretrained=1 is for the torchvision "
                          f"presets (resnet18 and the torchvision families)")
    return _fetch(name)


def load_into(net: nn.Module, state: dict, image_size: int) -> dict[str, list[str]]:
    """Load ImageNet `state` into `net` where it fits; returns the names {"loaded": …, "kept": …} (kept: left
    as initialised because the network's tensor differs in shape or is not in the file)."""
    if "encoder.pos_embedding" in state and hasattr(net, "patch_size"):
        from torchvision.models.vision_transformer import interpolate_embeddings

        state = interpolate_embeddings(image_size, net.patch_size, state)
    own = net.state_dict()
    fits = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    net.load_state_dict(fits, strict=False)
    return {"loaded": sorted(fits), "kept": sorted(set(own) - set(fits))}
