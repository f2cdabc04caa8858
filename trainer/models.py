"""Model presets. They differ in size and recipe so accuracy-vs-speed trade-offs can be measured:

- `small`    a few-layer CNN for CPU smoke runs and CI (≈0.1 M parameters);
- `fast`     an airbench-class network and recipe (patch-whitening stem, three conv groups, GELU,
             frozen-scale BatchNorm, label smoothing 0.2, Nesterov SGD with warm-up/warm-down, mirror +
             translate test-time augmentation) aiming at 94% on CIFAR-10 in ~10 epochs on one GPU;
             our own implementation after Keller Jordan's airbench94 (github.com/KellerJordan/cifar10-airbench),
             without its lookahead EMA;
- `resnet18` torchvision's ResNet-18 with a CIFAR stem (3×3 stride-1 first conv, no max-pool);
- torchvision's classification families as torchvision builds them (TORCHVISION_FAMILIES: MobileNetV3,
  EfficientNet-B0, ResNet-50, ConvNeXt-tiny, ViT-B/16), with the dataset's class count and, for ViT, its
  image size: the points of a JumpStart-style accuracy-vs-speed frontier (issue 26). `pretrained=1` starts
  them (and resnet18) from torchvision's ImageNet weights (trainer/pretrained.py).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Callable

import torch
from torch import nn


@dataclass(frozen=True)
class Hyperparameters:
    epochs: int
    batch_size: int
    lr: float
    momentum: float
    weight_decay: float
    label_smoothing: float
    warmup_fraction: float      # share of steps spent ramping lr up (linear), the rest ramps it down
    lr_start: float             # lr multiplier at step 0
    lr_end: float               # lr multiplier at the last step
    tta: int = 0                # test-time augmentation: 0 none, 1 mirror, 2 mirror + translate
    translate: int = 2          # training augmentation: max shift in pixels (0 disables)
    flip: bool = True
    eval_batch_size: int = 1000
    # --per-class runs only: at least this many optimizer steps (each epoch makes several passes over the
    # images to reach it). A fixed epoch count on 20 images per class is a handful of steps, which leaves
    # the model near chance and would measure the schedule, not the data. Full-data runs keep the recipe.
    min_steps: int = 200
    # study recipes (issue 26; the values allowed: trainer/hyperparameters.py)
    augment: str = "flip-translate"   # "none": no flip and no translate (with_overrides sets both off)
    lr_schedule: str = "warmup-decay"  # "constant": lr at every step (warmup_fraction, lr_start, lr_end unused)
    early_stopping_patience: int = 0   # > 0: stop after this many epochs without a better validation accuracy
    pretrained: int = 0                # 1: start from torchvision's ImageNet weights (torchvision presets)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Preset:
    name: str
    build: Callable[[int], nn.Module]
    hyperparameters: Hyperparameters
    description: str
    # lr multiplier for BatchNorm biases (airbench's "bias scaler"); their decay per step is kept equal
    bn_bias_lr_scale: float = 1.0
    gpu_precision: str = "bf16-mixed"
    extra: dict = field(default_factory=dict)
    # the torchvision builder whose ImageNet weights `pretrained=1` loads (None: the preset has none)
    torchvision_name: str | None = None
    image_sized: bool = False  # build(num_classes, image_size): the network is made for one input size (ViT)

    def network(self, num_classes: int, image_size: int = 32, imagenet_state: dict | None = None) -> nn.Module:
        """The preset's network for this dataset; started from ImageNet weights (trainer/pretrained.py fetch)
        where they fit, when given."""
        net = self.build(num_classes, image_size) if self.image_sized else self.build(num_classes)
        if imagenet_state is not None:
            from trainer.pretrained import load_into

            load_into(net, imagenet_state, image_size)
        return net


# ----------------------------------------------------------------------------------------------- small
def build_small(num_classes: int) -> nn.Module:
    def block(cin: int, cout: int) -> nn.Sequential:
        return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))

    return nn.Sequential(
        block(3, 24), nn.MaxPool2d(2),
        block(24, 48), nn.MaxPool2d(2),
        block(48, 96), nn.MaxPool2d(2),
        block(96, 96),
        nn.AdaptiveMaxPool2d(1), nn.Flatten(), nn.Linear(96, num_classes),
    )


# ------------------------------------------------------------------------------------------------ fast
class _BatchNorm(nn.BatchNorm2d):
    """BatchNorm with a frozen scale and a trainable shift (as in airbench)."""

    def __init__(self, num_features: int, momentum: float = 0.6, eps: float = 1e-12):
        super().__init__(num_features, eps=eps, momentum=1 - momentum)
        self.weight.requires_grad = False


class _Conv(nn.Conv2d):
    """3×3 'same' conv initialised as a partial identity (dirac), which trains faster from scratch."""

    def __init__(self, cin: int, cout: int, kernel_size: int = 3, padding: str | int = "same", bias: bool = False):
        super().__init__(cin, cout, kernel_size, padding=padding, bias=bias)

    def reset_parameters(self) -> None:
        super().reset_parameters()
        if self.bias is not None:
            self.bias.data.zero_()
        nn.init.dirac_(self.weight.data[: self.weight.size(1)])


class _ConvGroup(nn.Sequential):
    def __init__(self, cin: int, cout: int):
        super().__init__(_Conv(cin, cout), nn.MaxPool2d(2), _BatchNorm(cout), nn.GELU(),
                         _Conv(cout, cout), _BatchNorm(cout), nn.GELU())


class _Scale(nn.Module):
    def __init__(self, scale: float):
        super().__init__()
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale


class FastNet(nn.Sequential):
    WHITEN_KERNEL = 2

    def __init__(self, num_classes: int, widths: tuple[int, int, int] = (64, 256, 256)):
        whiten_width = 2 * 3 * self.WHITEN_KERNEL**2
        super().__init__(
            _Conv(3, whiten_width, self.WHITEN_KERNEL, padding=0, bias=True), nn.GELU(),
            _ConvGroup(whiten_width, widths[0]), _ConvGroup(widths[0], widths[1]), _ConvGroup(widths[1], widths[2]),
            nn.AdaptiveMaxPool2d(1), nn.Flatten(), nn.Linear(widths[2], num_classes, bias=False), _Scale(1 / 9),
        )
        self[0].weight.requires_grad = False  # the whitening filters are computed from data, not learned

    @torch.no_grad()
    def init_whitening(self, images: torch.Tensor, eps: float = 5e-4) -> None:
        """Set the stem to the ZCA-like whitening of 2×2 patches of (normalized, NCHW) training images:
        eigenvectors of the patch covariance scaled by 1/sqrt(eigenvalue), with their negatives."""
        k = self.WHITEN_KERNEL
        c = images.shape[1]
        patches = images.float().unfold(2, k, 1).unfold(3, k, 1).transpose(1, 3).reshape(-1, c * k * k)
        cov = patches.T @ patches / len(patches)
        eigenvalues, eigenvectors = torch.linalg.eigh(cov)
        eigenvalues, eigenvectors = eigenvalues.flip(0), eigenvectors.T.flip(0)
        filters = (eigenvectors / torch.sqrt(eigenvalues + eps)[:, None]).reshape(c * k * k, c, k, k)
        self[0].weight.data.copy_(torch.cat([filters, -filters]).to(self[0].weight.dtype))


# -------------------------------------------------------------------------------------------- resnet18
def build_resnet18(num_classes: int) -> nn.Module:
    from torchvision.models import resnet18

    net = resnet18(weights=None, num_classes=num_classes)
    net.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False)
    net.maxpool = nn.Identity()
    return net


# ------------------------------------------------------------------------------- torchvision families
# torchvision builder → what its constructor is told beyond the class count
TORCHVISION_FAMILIES = ("mobilenet_v3_small", "mobilenet_v3_large", "efficientnet_b0", "resnet50", "convnext_tiny",
                        "vit_b_16")


def build_torchvision(name: str, num_classes: int, image_size: int = 32) -> nn.Module:
    """torchvision's network as it builds it, with `num_classes` outputs; ViT is built for `image_size` (its
    position embeddings are per patch), the convolutional families pool globally and take any size."""
    import torchvision.models

    check_image_size(name, image_size)
    extra = {"image_size": image_size} if name.startswith("vit_") else {}
    return torchvision.models.get_model(name, weights=None, num_classes=num_classes, **extra)


def check_image_size(name: str, image_size: int) -> None:
    """ConfigError when model `name` cannot take images of this size: ViT cuts them into whole patches."""
    from trainer.errors import ConfigError

    if name.startswith("vit_"):
        patch = int(name.rsplit("_", 1)[1])
        if image_size % patch:
            raise ConfigError(f"model {name} needs an image size that is a multiple of {patch} "
                              f"(got --image-size {image_size})")


def _torchvision_preset(name: str, hp: Hyperparameters, description: str) -> Preset:
    from functools import partial

    return Preset(name, partial(build_torchvision, name), hp, description, torchvision_name=name,
                  image_sized=name.startswith("vit_"))


# One fine-tuning recipe for the families (SGD, warm-up/decay, a light label smoothing, mirror TTA); the
# transformer-style ones (ConvNeXt, ViT: LayerNorm, no BatchNorm) take a smaller lr. JumpStart's protocol
# sets lr, epochs and early stopping per run on top of it (--hp).
_FAMILY_HP = Hyperparameters(epochs=10, batch_size=128, lr=0.05, momentum=0.9, weight_decay=5e-4,
                             label_smoothing=0.1, warmup_fraction=0.15, lr_start=0.1, lr_end=0.01, tta=1,
                             eval_batch_size=500)
_TRANSFORMER_HP = replace(_FAMILY_HP, lr=0.01, weight_decay=0.05)


# airbench94 expresses lr and decay per 1024 examples with loss summed over the batch; with a batch-mean
# loss the same steps are lr = 11.5 / (1 + 1/(1-0.85)) = 1.5 and a decay of 0.0153*1024/7852 = 0.001995
# per step, i.e. weight_decay = 0.001995 / lr.
_FAST_LR = 11.5 / (1 + 1 / (1 - 0.85))
_FAST_DECAY_PER_STEP = 0.0153 * 1024 / (1024 * (1 + 1 / (1 - 0.85)))

PRESETS: dict[str, Preset] = {
    "small": Preset(
        "small", build_small,
        Hyperparameters(epochs=10, batch_size=128, lr=0.05, momentum=0.9, weight_decay=5e-4, label_smoothing=0.1,
                        warmup_fraction=0.15, lr_start=0.1, lr_end=0.01, eval_batch_size=1000),
        "a 4-layer CNN for CPU smoke runs and CI",
        gpu_precision="32-true",
    ),
    "fast": Preset(
        "fast", FastNet,
        Hyperparameters(epochs=10, batch_size=1024, lr=_FAST_LR, momentum=0.85,
                        weight_decay=_FAST_DECAY_PER_STEP / _FAST_LR, label_smoothing=0.2,
                        warmup_fraction=0.23, lr_start=0.2, lr_end=0.07, tta=2, eval_batch_size=2000),
        "airbench-class net and recipe: aims at 94% CIFAR-10 test accuracy in ~10 epochs",
        bn_bias_lr_scale=64.0,
    ),
    "resnet18": Preset(
        "resnet18", build_resnet18,
        Hyperparameters(epochs=30, batch_size=256, lr=0.2, momentum=0.9, weight_decay=5e-4, label_smoothing=0.0,
                        warmup_fraction=0.15, lr_start=0.1, lr_end=0.001, tta=1, eval_batch_size=1000),
        "torchvision ResNet-18 with a CIFAR stem",
        torchvision_name="resnet18",
    ),
    **{name: _torchvision_preset(name, _TRANSFORMER_HP if name.startswith(("vit_", "convnext_")) else _FAMILY_HP,
                                 f"torchvision {name}, as torchvision builds it")
       for name in TORCHVISION_FAMILIES},
}


def get_preset(name: str) -> Preset:
    from trainer.errors import ConfigError

    if name not in PRESETS:
        raise ConfigError(f"unknown model {name!r}; choose one of: {', '.join(PRESETS)}")
    return PRESETS[name]


def with_overrides(hp: Hyperparameters, **overrides) -> Hyperparameters:
    """The preset's hyperparameters with the run's; augment none is recorded as what it trains with: no flip, no
    translate."""
    hp = replace(hp, **{k: v for k, v in overrides.items() if v is not None})
    return replace(hp, flip=False, translate=0) if hp.augment == "none" else hp


def count_parameters(net: nn.Module) -> dict[str, int]:
    return {
        "total": sum(p.numel() for p in net.parameters()),
        "trainable": sum(p.numel() for p in net.parameters() if p.requires_grad),
    }


def param_groups(net: nn.Module, preset: Preset, hp: Hyperparameters) -> list[dict]:
    """SGD parameter groups; BatchNorm shifts may take a scaled lr at an unchanged decay per step."""
    if preset.bn_bias_lr_scale == 1.0:
        return [{"params": [p for p in net.parameters() if p.requires_grad]}]
    norm = [p for m in net.modules() if isinstance(m, nn.BatchNorm2d) for p in m.parameters() if p.requires_grad]
    norm_ids = {id(p) for p in norm}
    other = [p for p in net.parameters() if p.requires_grad and id(p) not in norm_ids]
    scale = preset.bn_bias_lr_scale
    return [
        {"params": norm, "lr": hp.lr * scale, "weight_decay": hp.weight_decay / scale},
        {"params": other},
    ]
