"""Dataset layouts, validation errors, fingerprint, decode-once cache, CIFAR batches, per-class subsets,
on-device augmentation."""
from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch
from stand_in.cli import platbench_here
from conftest import assert_one_line_error, platbench, write_cifar_batches, write_folder_dataset

from trainer.data import cache, layout, subset
from trainer.data.batches import TrainBatches, augment_draws
from trainer.errors import DataError


def test_folder_layout_classes_and_counts(color_data):
    ds = layout.scan_folder(color_data)
    assert ds.classes == ["blue", "green", "red"]
    assert len(ds.train.files) == 120 and len(ds.test.files) == 36
    assert sorted(set(ds.train.labels)) == [0, 1, 2]


def test_jpeg_files_are_a_dataset_too(tmp_path):
    root = write_folder_dataset(tmp_path / "jpg", 5, 2, suffix=".jpg")
    d = cache.load(root, cache_dir=tmp_path / "c")
    assert d.x_train.shape == (15, 32, 32, 3)


@pytest.mark.parametrize("breakage, message", [
    ("differing_classes", "only in test: purple"),
    ("empty_class", "class 'green' has no images"),
    ("corrupt_image", "cannot read image"),
    ("no_test", "missing folder"),
])
def test_bad_datasets_name_the_class_or_file(tmp_path, breakage, message):
    root = write_folder_dataset(tmp_path / "d", 4, 2)
    if breakage == "differing_classes":
        (root / "test/purple").mkdir()
        (root / "test/purple/x.png").write_bytes((root / "test/red/0000.png").read_bytes())
    elif breakage == "empty_class":
        for f in (root / "train/green").iterdir():
            f.unlink()
    elif breakage == "corrupt_image":
        (root / "train/red/0001.png").write_bytes(b"\x89PNG\r\n\x1a\n this is not a png")
    elif breakage == "no_test":
        shutil.rmtree(root / "test")
    with pytest.raises(DataError, match=message) as info:
        cache.load(root, cache_dir=tmp_path / "c")
    if breakage == "corrupt_image":
        assert "train/red/0001.png" in str(info.value)


def test_fingerprint_follows_content_not_timestamps(tmp_path):
    a = write_folder_dataset(tmp_path / "a", 3, 1)
    b = write_folder_dataset(tmp_path / "b", 3, 1)
    assert layout.fingerprint(a) == layout.fingerprint(b)
    f = a / "train/red/0000.png"
    f.touch()
    assert layout.fingerprint(a) == layout.fingerprint(b)
    img = np.zeros((32, 32, 3), np.uint8)
    from PIL import Image

    Image.fromarray(img).save(f)
    assert layout.fingerprint(a) != layout.fingerprint(b)


def test_decode_once_then_cache(tmp_path, monkeypatch):
    root = write_folder_dataset(tmp_path / "d", 5, 2)
    first = cache.load(root, cache_dir=tmp_path / "c")
    assert not first.cache_hit

    def no_decoding(*a, **k):
        raise AssertionError("decoded again despite the cache")

    monkeypatch.setattr("trainer.data.decode.decode_many", no_decoding)
    second = cache.load(root, cache_dir=tmp_path / "c")
    assert second.cache_hit and second.fingerprint == first.fingerprint
    np.testing.assert_array_equal(first.x_train, second.x_train)
    assert list((tmp_path / "c").glob(f"{first.fingerprint}-32px.npz"))


def test_images_of_other_sizes_are_resized_on_decode(digits_data, tmp_path):
    d = cache.load(digits_data, image_size=32, cache_dir=tmp_path / "c")  # digits are 8×8 grey on disk
    assert d.x_train.shape[1:] == (32, 32, 3) and d.classes == [str(i) for i in range(10)]
    assert len(d.x_train) + len(d.x_test) == 1797


def test_cifar_python_batches_read_directly(tmp_path):
    root = write_cifar_batches(tmp_path / "cifar", per_batch=20)
    d = cache.load(root, cache_dir=tmp_path / "c")
    assert d.format == "cifar-python"
    assert d.x_train.shape == (100, 32, 32, 3) and d.x_test.shape == (20, 32, 32, 3)
    assert d.classes[0] == "class0"
    import pickle

    raw = pickle.load((root / "cifar-10-batches-py/data_batch_1").open("rb"), encoding="bytes")
    # channel-major rows → HWC: pixel (0,0) red is byte 0, green byte 1024, blue byte 2048
    assert tuple(d.x_train[0, 0, 0]) == (raw[b"data"][0][0], raw[b"data"][0][1024], raw[b"data"][0][2048])


def test_prepare_cifar10_from_batches_writes_the_folder_layout(tmp_path):
    src = write_cifar_batches(tmp_path / "cifar", per_batch=10)
    proc = platbench("data", "prepare", "cifar10", "--source", str(src), "--out", str(tmp_path / "out"), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    out = tmp_path / "out"
    pngs = list(out.glob("train/*/*.png"))
    assert len(pngs) == 50 and len(list(out.glob("test/*/*.png"))) == 10
    a = cache.load(src, cache_dir=tmp_path / "c1")
    b = cache.load(out, cache_dir=tmp_path / "c2")
    # PNG is lossless: the same multiset of images per split (file order differs by class folder)
    assert sorted(map(bytes, a.x_train)) == sorted(map(bytes, b.x_train))


def test_prepare_refuses_to_overwrite_and_leaves_nothing_half_written(tmp_path):
    """In this process (tests/stand_in/cli.py); the download failure below is a refusal through the entry point."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    proc = platbench_here("data", "prepare", "digits", "--out", str(out), cwd=tmp_path)
    assert_one_line_error(proc)
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out.")]
    proc = platbench_here("data", "prepare", "imagenet", "--out", str(tmp_path / "x"), cwd=tmp_path)
    assert_one_line_error(proc)


def test_cifar10_download_uses_torchvision_and_reports_failure_in_one_line(tmp_path):
    # no network here: torchvision's real download code runs and fails; the user gets one line (in this process,
    # tests/stand_in/cli.py: `data prepare`'s subprocess form is the test above)
    proc = platbench_here("data", "prepare", "cifar10", "--out", str(tmp_path / "o"), "--download-dir",
                          str(tmp_path / "dl"), cwd=tmp_path, env={"https_proxy": "http://127.0.0.1:9", "HTTPS_PROXY":
                                                                   "http://127.0.0.1:9"})
    assert_one_line_error(proc)
    assert "could not download CIFAR-10" in proc.stderr
    assert not (tmp_path / "o").exists()


def test_per_class_subsets_are_nested_deterministic_and_hold_out_20_percent():
    labels = np.repeat(np.arange(10), 100)
    classes = [str(i) for i in range(10)]
    splits = {n: subset.per_class_split(labels, classes, n, seed=7) for n in (5, 20, 80)}
    for n, (train, val) in splits.items():
        assert len(val) == 10 * max(1, round(0.2 * n)) and len(train) + len(val) == 10 * n
        assert not set(train) & set(val)
    s5 = set(np.concatenate(splits[5]))
    s20 = set(np.concatenate(splits[20]))
    s80 = set(np.concatenate(splits[80]))
    assert s5 <= s20 <= s80
    again = subset.per_class_split(labels, classes, 20, seed=7)
    assert all((a == b).all() for a, b in zip(again, splits[20]))
    other = subset.per_class_split(labels, classes, 20, seed=8)
    assert set(np.concatenate(other)) != s20
    with pytest.raises(DataError, match="class '0' has 100 training images, fewer than --per-class 101"):
        subset.per_class_split(labels, classes, 101, seed=0)


LADDER = (5, 20, 80, 320, 1280)  # the studies' images-per-class ladder


def test_train_and_validation_sets_are_each_nested_across_the_whole_ladder_and_disjoint_at_every_n():
    # three classes of unequal size (labels interleaved), each large enough for the top of the ladder
    labels = np.concatenate([np.full(n, c) for c, n in enumerate((1300, 1290, 1400))])
    labels = labels[np.random.default_rng(1).permutation(len(labels))]
    classes = ["a", "b", "c"]
    for seed in (0, 5):
        splits = {n: tuple(set(s.tolist()) for s in subset.per_class_split(labels, classes, n, seed)) for n in LADDER}
        for n, (train, val) in splits.items():
            assert not train & val, n
            assert len(train) + len(val) == 3 * n
            for c in range(3):  # per class: today's validation count, max(1, round(0.2 N))
                assert sum(labels[i] == c for i in val) == max(1, round(0.2 * n))
        for small, big in zip(LADDER, LADDER[1:]):
            assert splits[small][0] <= splits[big][0], f"train at {small} not inside train at {big}"
            assert splits[small][1] <= splits[big][1], f"validation at {small} not inside validation at {big}"
    # every N from 2 up, not only the ladder's: each set only ever gains images
    prev_train, prev_val = set(), set()
    for n in range(2, 200):
        train, val = (set(s.tolist()) for s in subset.per_class_split(labels, classes, n, seed=3))
        assert prev_train <= train and prev_val <= val and not train & val and train
        prev_train, prev_val = train, val


def test_augmentation_is_reflect_pad_crop_and_flip_per_image():
    x = torch.randint(0, 256, (120, 8, 8, 3), dtype=torch.uint8)
    y = torch.arange(120)  # label = index, to find each image's source
    b = TrainBatches(x, y, 10, [0.0] * 3, [1 / 255] * 3, seed=2)  # normalization = identity ×255
    images, labels = b.epoch_tensors()
    gen = b.generator()
    torch.randperm(120, generator=gen)
    draws = augment_draws(2, True, gen)
    assert len(draws) == 50 and len(set(draws)) == 50
    padded = torch.nn.functional.pad(x.permute(0, 3, 1, 2).float(), (2, 2, 2, 2), mode="reflect")
    for pos in range(120):
        dy, dx, flip = draws[pos % 50]
        ref = padded[labels[pos], :, 2 + dy:2 + dy + 8, 2 + dx:2 + dx + 8]
        if flip:
            ref = ref.flip(2)
        assert torch.allclose(images[pos], ref, atol=1e-3), pos
    assert sorted(labels.tolist()) == list(range(120))  # a permutation: every image once


def test_epochs_are_reproducible_and_differ_between_epochs():
    x = torch.randint(0, 256, (50, 8, 8, 3), dtype=torch.uint8)
    y = torch.arange(50) % 5
    b = TrainBatches(x, y, 16, [0.5] * 3, [0.25] * 3, seed=1)
    b.epoch = 3
    first = [t.clone() for t, _ in b]
    second = [t.clone() for t, _ in b]  # batches are views of one reused buffer: compare copies
    assert all(torch.equal(p, q) for p, q in zip(first, second))
    b.epoch = 4
    assert not torch.equal(next(iter(b))[0], first[0])
    assert len(b) == 3 and all(t.shape == (16, 3, 8, 8) for t in first)


def test_several_passes_an_epoch_survive_a_fetch_ahead_and_reproduce():
    x = torch.randint(0, 256, (30, 8, 8, 3), dtype=torch.uint8)
    y = torch.arange(30)  # label = index
    b = TrainBatches(x, y, 10, [0.5] * 3, [0.25] * 3, seed=4, passes=3)
    b.epoch = 2
    assert len(b) == 9 and b.steps_per_pass == 3
    # Lightning fetches batch i+1 before training on batch i: the batch it holds must not change meanwhile
    it = iter(b)
    held = next(it)
    snapshot = [t.clone() for t in held]
    consumed = []
    for nxt in it:
        assert all(torch.equal(a, s) for a, s in zip(held, snapshot)), "a fetch-ahead overwrote the held batch"
        consumed.append(snapshot)
        held, snapshot = nxt, [t.clone() for t in nxt]
    consumed.append(snapshot)
    labels = [c[1] for c in consumed]
    passes = [torch.cat(labels[i:i + 3]).tolist() for i in (0, 3, 6)]
    assert all(sorted(p) == list(range(30)) for p in passes)  # each pass: every image once
    assert passes[0] != passes[1] != passes[2]  # reshuffled each pass
    first, first_labels = b.epoch_tensors()  # the first pass is the single-pass epoch
    assert torch.equal(torch.cat([c[0] for c in consumed[:3]]), first) and first_labels.tolist() == passes[0]
    again = [t[1].clone() for t in b]
    assert torch.cat(again).tolist() == sum(passes, [])  # same (seed, epoch): same passes


def test_a_prepared_dataset_is_readable_as_the_umask_allows(tmp_path):
    """`data prepare` built the folder in a mkdtemp directory (mode 0700) and renamed it into place: a
    container running as another uid (compose with PLATBENCH_UID, `launch docker` as root) could not read it."""
    import os
    import stat

    from trainer.data.prepare import digits, write_folder

    old = os.umask(0o022)
    try:
        classes, splits = digits()
        out = write_folder(tmp_path / "digits", classes, {k: (v[0][:20], v[1][:20]) for k, v in splits.items()})
    finally:
        os.umask(old)
    assert stat.S_IMODE(out.stat().st_mode) == 0o755
    assert all(stat.S_IMODE(p.stat().st_mode) & 0o005 == 0o005 for p in out.rglob("*") if p.is_dir())


def _image_kinds(root):
    """JPEGs and PNGs of every kind the batched decoder sees or hands to Pillow, of CIFAR and other sizes."""
    from PIL import Image

    rng = np.random.default_rng(1)
    smooth = np.kron(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8), np.ones((4, 4, 1), np.uint8))
    noise = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    root.mkdir()
    kinds = {
        "rgb.jpg": (Image.fromarray(noise), {}),
        "smooth420.jpg": (Image.fromarray(smooth), {"quality": 75}),
        "smooth444.jpg": (Image.fromarray(smooth), {"subsampling": 0, "quality": 95}),
        "progressive.jpg": (Image.fromarray(noise), {"progressive": True}),
        "grey.jpg": (Image.fromarray(noise[..., 0], "L"), {}),
        "large.jpg": (Image.fromarray(noise).resize((45, 37)), {}),
        "cmyk.jpg": (Image.fromarray(noise).convert("CMYK"), {}),
        "rgb.png": (Image.fromarray(noise), {}),
        "rgba.png": (Image.fromarray(np.dstack([noise, noise[..., :1]]), "RGBA"), {}),
        "palette.png": (Image.fromarray(noise).convert("P"), {}),
    }
    for name, (img, options) in kinds.items():
        img.save(root / name, **options)
    return sorted(root.iterdir())


def test_batched_decoding_gives_pillows_pixels(tmp_path):
    from trainer.data.decode import decode_many, decode_one

    paths = _image_kinds(tmp_path / "kinds")
    for size in (32, 24):
        batched = decode_many(paths, size)
        for path, got in zip(paths, batched):
            np.testing.assert_array_equal(got, decode_one(path, size), err_msg=path.name)


def test_a_corrupt_jpeg_in_a_batch_is_named(tmp_path):
    from trainer.data.decode import decode_many

    paths = _image_kinds(tmp_path / "kinds")
    bad = tmp_path / "kinds/bad.jpg"
    bad.write_bytes(paths[0].read_bytes()[:40])  # a JPEG header, then nothing
    with pytest.raises(DataError, match="cannot read image .*bad.jpg"):
        decode_many([*paths, bad], 32)


def test_the_fingerprint_of_bytes_already_read_is_the_files_fingerprint(color_data):
    ds = layout.scan_folder(color_data)
    files = (ds.train.files + ds.test.files)[::-1]  # any order: the fingerprint sorts
    assert layout.fingerprint_files(color_data, files, [p.read_bytes() for p in files]) == \
        layout.fingerprint(color_data)


def test_channel_stats_from_histograms_equal_the_pixelwise_figures():
    """The first epoch's statistics come from per-channel histograms (issue 28): the same mean and std as over a
    float copy of every pixel."""
    import numpy as np

    from trainer.data.batches import channel_stats

    x = np.random.default_rng(0).integers(0, 256, size=(257, 8, 8, 3), dtype=np.uint8)
    x[..., 1] //= 3  # channels of different spread
    flat = x.reshape(-1, 3).astype(np.float64) / 255.0
    mean, std = channel_stats(x)
    assert np.allclose(mean, flat.mean(0), rtol=0, atol=1e-12)
    assert np.allclose(std, flat.std(0) + 1e-8, rtol=0, atol=1e-12)
