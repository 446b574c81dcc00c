"""PSNR and SSIM: agreement with scikit-image on real faces, hand-computed cases, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import ndimage
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from occbench.errors import ConfigError
from occbench.imageio import read_rgb
from occbench.metrics.psnr import PSNRMean, mean_psnr, psnr
from occbench.metrics.ssim import gaussian_kernel, mean_ssim, ssim
from occbench.occlusion import occlude_batch

KINDS = ["rect", "text", "noise", "blur", "shift"]


def _perturb(faces: np.ndarray, kind: str) -> np.ndarray:
    """Real degradations of real faces: the paper's occlusions, noise, blur, misalignment."""
    rng = np.random.default_rng(1)
    keys = [f"test/face_{i:03d}.jpg" for i in range(len(faces))]
    if kind == "rect":
        return occlude_batch(faces, keys, "rect", 0.10, "eyes")[0]
    if kind == "text":
        return occlude_batch(faces, keys, "text", 0.3, "mouth")[0]
    if kind == "noise":
        return np.clip(faces + rng.normal(0, 12, faces.shape), 0, 255).astype(np.uint8)
    if kind == "blur":
        blurred = ndimage.gaussian_filter(faces.astype(float), (0, 1.2, 1.2, 0))
        return np.round(blurred).astype(np.uint8)
    return np.roll(faces, (1, 2), axis=(1, 2))  # "shift"


def _sk_ssim(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.array([
        structural_similarity(x, y, gaussian_weights=True, sigma=1.5,
                              use_sample_covariance=False, channel_axis=-1, data_range=255)
        for x, y in zip(a, b, strict=True)])


def _sk_psnr(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.array([peak_signal_noise_ratio(x, y, data_range=255)
                     for x, y in zip(a, b, strict=True)])


@pytest.fixture(scope="module")
def raw_lfw(data_root) -> np.ndarray:
    """8 unaligned 250x250 LFW photos, as read from disk."""
    files = sorted((data_root / "lfw").glob("*/*.jpg"))[:8]
    return np.stack([read_rgb(f) for f in files])


@pytest.mark.parametrize("kind", KINDS)
def test_agrees_with_skimage_on_real_faces(lfw_faces, kind):
    clean = lfw_faces[:30]
    other = _perturb(clean, kind)
    ref_ssim, ref_psnr = _sk_ssim(other, clean), _sk_psnr(other, clean)
    assert ref_ssim.std() > 0.003 and ref_ssim.max() < 0.995  # real, varied differences
    got_ssim, got_psnr = ssim(other, clean), psnr(other, clean)
    assert got_ssim.shape == got_psnr.shape == (30,)
    assert got_ssim.dtype == got_psnr.dtype == np.float64
    assert np.abs(got_psnr - ref_psnr).max() < 1e-9
    assert np.abs(got_ssim - ref_ssim).max() < 1e-4  # the spec
    assert np.abs(got_ssim - ref_ssim).max() < 5e-6  # what float32 with a shift achieves


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_float32_precision_on_bright_low_contrast_faces(lfw_faces, backend):
    """Real faces squeezed into [235, 254] with slight noise: the worst case for float32
    cancellation in E[x²] - E[x]² (about 5e-6 off without the shift by half the range)."""
    bright = (235 + lfw_faces[:20] // 13).astype(np.uint8)
    rng = np.random.default_rng(2)
    noisy = np.clip(bright + rng.normal(0, 1.5, bright.shape).round(), 0, 255).astype(np.uint8)
    assert np.abs(ssim(noisy, bright, backend=backend) - _sk_ssim(noisy, bright)).max() < 2e-6


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_other_sizes_backends_and_ragged_chunks(raw_lfw, backend):
    """Unaligned photos cropped to non-square 210x160: catches H/W mix-ups and border errors."""
    clean = np.ascontiguousarray(raw_lfw[:, 20:230, 45:205])
    other = _perturb(clean, "noise")
    other[:, 60:120, 30:90] = [200, 40, 90]
    ref = _sk_ssim(other, clean)
    for chunk in (None, 3):  # 3 does not divide 8: a short last chunk
        got = ssim(other, clean, backend=backend, chunk=chunk)
        assert np.abs(got - ref).max() < 5e-6
    assert np.abs(psnr(other, clean) - _sk_psnr(other, clean)).max() < 1e-9


def test_torch_tensors_give_the_same_values(lfw_faces):
    clean = lfw_faces[:6]
    other = _perturb(clean, "rect")
    base = ssim(other, clean)
    tc, to = torch.from_numpy(clean), torch.from_numpy(other)
    assert np.array_equal(ssim(to, tc), base)
    assert np.array_equal(ssim(to, tc, device="cpu"), base)
    assert np.array_equal(psnr(to, tc), psnr(other, clean))
    assert np.abs(ssim(to, tc, backend="torch") - base).max() < 1e-6
    assert np.array_equal(ssim(other[0], clean[0]), base[:1])  # one (H, W, 3) image


def test_float_inputs_are_consistent_with_uint8_and_with_skimage(lfw_faces):
    clean = lfw_faces[:10]
    other = _perturb(clean, "text")
    base_ssim, base_psnr = ssim(other, clean), psnr(other, clean)
    as_bf16 = [torch.from_numpy(x).to(torch.bfloat16) for x in (other, clean)]  # exact to 256
    for o, c in [(other.astype(t), clean.astype(t)) for t in (np.float64, np.float32, np.float16)]:
        assert np.abs(ssim(o, c) - base_ssim).max() < 1e-7
        assert np.abs(psnr(o, c) - base_psnr).max() < 1e-9
    assert np.abs(ssim(*as_bf16) - base_ssim).max() < 1e-7
    assert np.abs(psnr(*as_bf16) - base_psnr).max() < 1e-9
    # non-integer values: float64 against skimage's float64, float32 against float64
    smooth = ndimage.gaussian_filter(other.astype(np.float64), (0, 0.7, 0.7, 0))
    ref = np.array([structural_similarity(x, y, gaussian_weights=True, sigma=1.5,
                                          use_sample_covariance=False, channel_axis=-1,
                                          data_range=255)
                    for x, y in zip(smooth, clean.astype(np.float64), strict=True)])
    got64 = ssim(smooth, clean.astype(np.float64))
    got32 = ssim(smooth.astype(np.float32), clean.astype(np.float32))
    assert np.abs(got64 - ref).max() < 5e-6
    assert np.abs(got32 - got64).max() < 1e-5
    ref_psnr = [peak_signal_noise_ratio(x, y, data_range=255)
                for x, y in zip(clean.astype(np.float64), smooth, strict=True)]
    assert np.abs(psnr(clean.astype(np.float64), smooth) - ref_psnr).max() < 1e-9


@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 3), h=st.integers(11, 40), w=st.integers(11, 40),
       seed=st.integers(0, 2**32 - 1))
def test_any_size_agrees_with_skimage(n, h, w, seed):
    """Random pixels of any size from the smallest window-sized image up."""
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 256, (n, h, w, 3), dtype=np.uint8)
    b = np.clip(a + rng.integers(-40, 41, a.shape), 0, 255).astype(np.uint8)
    assert np.abs(ssim(a, b) - _sk_ssim(a, b)).max() < 5e-6
    assert np.abs(ssim(a, b, backend="torch") - _sk_ssim(a, b)).max() < 5e-6
    assert np.abs(psnr(a, b) - _sk_psnr(a, b)).max() < 1e-9


def test_hand_computed_cases():
    a = np.full((2, 32, 24, 3), 100, np.uint8)
    b = np.full((2, 32, 24, 3), 110, np.uint8)
    # every pixel off by 10: MSE = 100
    assert psnr(a, b) == pytest.approx([10 * np.log10(255**2 / 100)] * 2, abs=1e-12)
    # one channel of one pixel off by 51: MSE = 51² / (32·24·3)
    c = a.copy()
    c[1, 5, 7, 2] = 151
    assert psnr(a, c)[1] == pytest.approx(10 * np.log10(255**2 * 32 * 24 * 3 / 51**2), abs=1e-12)
    assert psnr(a, c)[0] == np.inf
    assert ssim(a, a) == pytest.approx([1.0, 1.0], abs=1e-7)
    # flat images have no variance: SSIM = (2 μx μy + C1) / (μx² + μy² + C1)
    c1 = (0.01 * 255) ** 2
    assert ssim(a, b) == pytest.approx([(2 * 100 * 110 + c1) / (100**2 + 110**2 + c1)] * 2,
                                       abs=1e-6)


def test_ssim_is_symmetric_and_ordered_on_real_faces(lfw_faces):
    clean = lfw_faces[:12]
    mild = _perturb(clean, "noise")
    strong = np.clip(mild.astype(int) * 2 - clean, 0, 255).astype(np.uint8)  # twice the noise
    assert np.abs(ssim(mild, clean) - ssim(clean, mild)).max() < 1e-6
    assert (ssim(strong, clean) < ssim(mild, clean)).all()
    assert (psnr(strong, clean) < psnr(mild, clean)).all()


def test_kernel_is_scipys_gaussian():
    impulse = np.zeros(31)
    impulse[15] = 1.0
    response = ndimage.gaussian_filter1d(impulse, 1.5, truncate=3.5)
    g = gaussian_kernel(1.5)
    assert len(g) == 11
    assert np.abs(response[10:21] - g).max() < 1e-15 and response[:10].sum() == 0


def test_means_report_infinite_psnr():
    values = np.array([30.0, np.inf, 40.0, np.inf])
    assert mean_psnr(values) == PSNRMean(35.0, 2, 2)
    assert mean_psnr(values, cap=100.0) == PSNRMean(67.5, 4, 2)
    m = mean_psnr([np.inf])
    assert np.isnan(m.mean) and m.n == 0 and m.n_inf == 1
    with pytest.raises(ConfigError, match="NaN"):
        mean_psnr([30.0, np.nan])
    assert mean_ssim([0.5, 0.7]) == pytest.approx(0.6)
    with pytest.raises(ConfigError, match="not finite"):
        mean_ssim([0.5, np.nan])


@pytest.mark.parametrize(("a", "b", "kwargs", "message"), [
    (np.zeros((2, 20, 20, 3)), np.zeros((2, 20, 21, 3)), {}, "differ in shape"),
    (np.zeros((20, 20)), np.zeros((20, 20)), {}, r"shape \(20, 20\); expected \(N, H, W, 3\)"),
    (np.zeros((1, 20, 20, 4)), np.zeros((1, 20, 20, 4)), {}, "expected"),
    (np.zeros((1, 20, 20, 3), bool), np.zeros((1, 20, 20, 3), bool), {}, "dtype bool"),
    (np.zeros((1, 20, 20, 3), complex), np.zeros((1, 20, 20, 3)), {}, "dtype complex"),
    (np.full((1, 20, 20, 3), 300.0), np.zeros((1, 20, 20, 3)), {}, r"outside \[0, 255\]"),
    (np.full((1, 20, 20, 3), np.nan), np.zeros((1, 20, 20, 3)), {}, "outside"),
    (np.zeros((1, 20, 20, 3)), np.full((1, 20, 20, 3), -1.0), {}, "second images"),
    (np.zeros((1, 20, 20, 3)), np.zeros((1, 20, 20, 3)), {"data_range": 0}, "positive"),
])
def test_bad_inputs_are_clear_errors_for_both_metrics(a, b, kwargs, message):
    for metric in (psnr, ssim):
        with pytest.raises(ConfigError, match=message):
            metric(a, b, **kwargs)


@pytest.mark.parametrize(("kwargs", "shape", "message"), [
    ({}, (1, 10, 40, 3), "smaller than the 11x11 window"),
    ({"sigma": 0}, (1, 20, 20, 3), "sigma > 0"),
    ({"chunk": 0}, (1, 20, 20, 3), "chunk"),
    ({"backend": "jax"}, (1, 20, 20, 3), "backend"),
    ({"backend": "numpy", "device": "cuda"}, (1, 20, 20, 3), "numpy backend runs on the CPU"),
    ({"device": "no-such-device"}, (1, 20, 20, 3), "bad device"),
])
def test_bad_ssim_settings_are_clear_errors(kwargs, shape, message):
    x = np.zeros(shape, np.uint8)
    with pytest.raises(ConfigError, match=message):
        ssim(x, x, **kwargs)
