"""The completed-face cache: exact round trip, and a trained completer runs once per image and
condition whatever the recognizer, with figures identical to an uncached run."""

from __future__ import annotations

import numpy as np
import pandas as pd

from occbench.completions import CompletionStore, complete_cached
from occbench.condition import Condition
from occbench.faces import face_digests
from occbench.metrics.iou import mask_iou
from occbench.models import create_completer
from occbench.occlusion import occlude_batch
from occbench.runner import RunConfig, run
from tests._counting import count_calls

COND = Condition("rect", "eyes", 0.1)


def test_round_trip_is_exact_and_mask_is_thresholded(tmp_path, lfw_faces):
    store = CompletionStore(tmp_path, "x@1", COND, "1")
    masks = np.zeros((3, 112, 112), np.float32)
    masks[0, :10, :20] = 0.51  # kept
    masks[1, 5:9, 5:9] = 0.49  # below the threshold: dropped
    masks[2, -1, -1] = 1.0  # the last bit of the packed mask
    keys = ["a/1", "a/2", "b/1"]
    store.put(keys, face_digests(lfw_faces[:3]), lfw_faces[:3], masks)
    got = store.get(["b/1", "zz", "a/1", "a/2"],
                    face_digests(lfw_faces[[2, 3, 0, 1]]))
    assert set(got) == {"a/1", "a/2", "b/1"}
    for i, k in enumerate(keys):
        image, mask = got[k]
        assert np.array_equal(image, lfw_faces[i])
        assert np.array_equal(mask, (masks[i] > 0.5).astype(np.float32))
    assert got["a/1"][1].sum() == 200 and got["a/2"][1].sum() == 0 and got["b/1"][1][-1, -1] == 1


def test_complete_cached_calls_the_completer_only_for_new_keys(tmp_path, lfw_faces,
                                                               monkeypatch):
    comp = create_completer("bvmr")
    real = comp.complete
    calls = count_calls(monkeypatch, comp, "complete")
    faces = lfw_faces[:6]
    keys = [f"k/{i}" for i in range(6)]
    occluded, true_mask, _ = occlude_batch(faces, keys, "rect", 0.1, "eyes", seed=0)
    store = CompletionStore(tmp_path, "bvmr@test", COND, "1")
    digests = face_digests(faces)
    direct_images, direct_masks = real(occluded, faces)
    first = complete_cached(comp, store, keys[:4], digests[:4], occluded[:4], faces[:4])
    both = complete_cached(comp, store, keys, digests, occluded, faces)  # 4 cached, 2 new
    assert calls == [4, 2]
    assert np.array_equal(first[0], direct_images[:4])
    assert np.array_equal(both[0], direct_images)
    assert np.array_equal(mask_iou(both[1], true_mask), mask_iou(direct_masks, true_mask))
    again = complete_cached(comp, store, keys[::-1], digests[::-1], occluded[::-1], faces[::-1])
    assert calls == [4, 2] and np.array_equal(again[0], direct_images[::-1])
    # another face under a cached name is completed anew, never served from the cache
    swapped = faces[[1, 0]]
    occ_swapped, _, _ = occlude_batch(swapped, keys[:2], "rect", 0.1, "eyes", seed=0)
    out = complete_cached(comp, store, keys[:2], face_digests(swapped), occ_swapped, swapped)
    assert calls == [4, 2, 2] and np.array_equal(out[0], real(occ_swapped, swapped)[0])


def test_second_recognizer_reuses_completions_and_rows_match(data_root, tmp_path, monkeypatch):
    """bvmr with resnet50, then with resnet50-occ: the second run completes nothing, and its
    rows equal those of a run with an empty cache."""
    from occbench.models import torch_adapter

    calls = count_calls(monkeypatch, torch_adapter.TorchCompleter, "complete")

    def go(recognizer, cache):
        cfg = RunConfig(model="bvmr", recognizer=recognizer, forms=("rect",),
                        positions=("eyes",), sizes=(0.1,), limit=20,
                        protocols=("identification", "verification", "reconstruction"))
        return run(cfg, data_root, tmp_path / f"out-{recognizer}-{cache}",
                   cache=tmp_path / cache, progress=False)

    go("resnet50", "shared")
    n_first = sum(calls)
    assert n_first > 0
    warm = go("resnet50-occ", "shared")
    assert sum(calls) == n_first  # nothing completed again
    cold = go("resnet50-occ", "fresh")
    assert sum(calls) == 2 * n_first
    cols = ["protocol", "dataset", "form", "metric", "D", "rank", "value", "n"]
    key = cols[:-2]
    pd.testing.assert_frame_equal(warm[cols].sort_values(key).reset_index(drop=True),
                                  cold[cols].sort_values(key).reset_index(drop=True))
    assert (warm.metric == "mask_iou").any()


def test_oracle_and_occluded_completers_are_not_cached():
    assert not create_completer("occluded").cache_outputs
    assert not create_completer("clean").cache_outputs
    assert create_completer("bvmr").cache_outputs
