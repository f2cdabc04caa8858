"""What an AutoML service run measures, checked where it could go wrong (platforms/core/service.py,
platforms/core/service_eval.py): the images a service gets (the trainer's nested subsets, 80/20 or all of them,
never a test image), and scores over the WHOLE test set (an unanswered image counts as wrong, top-5 only
where the service ranks more than one label and there are more than five)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from platforms.core.api import Job
from platforms.core.service import LabelledImage, ServiceData, prepare


def test_subsets_are_the_trainers_nested_ones_and_never_touch_the_test_set(color_data, tmp_path):
    import trainer.data.subset as subset
    from trainer.data.layout import scan_folder

    small, big = (prepare(Job(data=color_data, out=tmp_path, per_class=n, seed=3), False) for n in (5, 20))
    assert {x.path for x in small.train + small.val} < {x.path for x in big.train + big.val}
    assert (len(small.train), len(small.val), len(big.train), len(big.val)) == (12, 3, 48, 12)
    assert not {x.path for x in big.uploaded} & {x.path for x in big.test}
    assert len(big.test) == 36 and all("/test/" in str(x.path) for x in big.test)
    # the same images the trainer itself would pick for --per-class 20 --seed 3
    ds = scan_folder(color_data)
    tr, va = subset.per_class_split(np.asarray(ds.train.labels), ds.classes, 20, 3)
    assert [x.path for x in big.train] == [ds.train.files[i] for i in tr]
    assert [x.path for x in big.val] == [ds.train.files[i] for i in va]
    # every image (no --per-class) is the same cut at N = the class's size
    full = prepare(Job(data=color_data, out=tmp_path, per_class=None, seed=3), False)
    tr, va = subset.per_class_split(np.asarray(ds.train.labels), ds.classes, 40, 3)
    assert [x.path for x in full.train] == [ds.train.files[i] for i in tr]
    # a service that cross-validates gets train and validation together
    cv = prepare(Job(data=color_data, out=tmp_path, per_class=5, seed=3), True)
    assert cv.val == [] and {x.path for x in cv.train} == {x.path for x in small.uploaded}


def _data(n_classes: int, per_class: int) -> ServiceData:
    classes = [f"c{k}" for k in range(n_classes)]
    root = Path("/data")
    test = [LabelledImage(root / "test" / c / f"{i}.png", c) for c in classes for i in range(per_class)]
    return ServiceData(root, classes, [], [], test, "")


def test_scores_count_every_test_image_and_unanswered_ones_as_wrong():
    from platforms.core.service_eval import score

    data = _data(6, 2)  # 12 test images
    ranked = lambda best, *rest: {"class": best, "probability": 0.9, "top": [[best, 0.9], *[[r, 0.01] for r in rest]]}  # noqa: E731
    preds = {0: ranked("c0"), 1: ranked("c1", "c2", "c3", "c4", "c0"),   # c0: one right, one in the top 5
             2: ranked("c1"), 3: ranked("c1"),                             # c1: both right
             4: ranked("c0", "c1", "c3", "c4", "c5", "c2")}                # c2: wrong, and 6th: not in the top 5
    s = score(data, preds, top_k_given=True)
    assert s["answered"] == 5 and s["images"] == 12
    assert s["accuracy"] == pytest.approx(3 / 12)  # not 3 / 5: the 7 unanswered count as wrong
    assert s["top5_accuracy"] == pytest.approx(4 / 12)
    assert s["per_class_accuracy"]["c0"] == 0.5 and s["per_class_accuracy"]["c1"] == 1.0
    assert s["per_class_accuracy"]["c5"] == 0.0
    assert s["confusion"]["matrix"][5][-1] == 2  # class c5: both unanswered, in the last column
    assert sum(map(sum, s["confusion"]["matrix"])) == 12
    assert score(data, preds, top_k_given=False)["top5_accuracy"] is None  # only the best label given
    assert score(_data(3, 2), {}, top_k_given=True)["top5_accuracy"] is None  # 3 labels: nothing to rank
