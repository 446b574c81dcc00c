"""PSNR and SSIM against scikit-image on real aligned faces, plus hand-computed cases."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from occbench.errors import ConfigError
from occbench.metrics import psnr, ssim
from occbench.metrics.ssim import gaussian_kernel


def _perturbed(faces: np.ndarray) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(1)
    rect = faces.copy()
    for i in range(len(rect)):
        y, x = rng.integers(0, 70, 2)
        rect[i, y:y + 40, x:x + 30] = rng.integers(0, 256, 3)
    noise = np.clip(faces + rng.normal(0, 12, faces.shape), 0, 255).astype(np.uint8)
    shifted = np.roll(faces, 2, axis=2)
    return {"rect": rect, "noise": noise, "shifted": shifted}


def _sk_ssim(a, b):
    return structural_similarity(a, b, gaussian_weights=True, sigma=1.5,
                                 use_sample_covariance=False, channel_axis=-1, data_range=255)


@pytest.mark.parametrize("kind", ["rect", "noise", "shifted"])
def test_agrees_with_skimage_on_real_faces(lfw_faces, kind):
    faces = lfw_faces[:30]
    other = _perturbed(faces)[kind]
    ref_ssim = np.array([_sk_ssim(a, b) for a, b in zip(faces, other, strict=True)])
    ref_psnr = np.array([peak_signal_noise_ratio(a, b, data_range=255)
                         for a, b in zip(faces, other, strict=True)])
    assert np.abs(ssim(faces, other) - ref_ssim).max() < 1e-4
    assert np.abs(psnr(faces, other) - ref_psnr).max() < 1e-4
    assert ref_ssim.std() > 0.005  # the cases really differ from each other


def test_chunk_and_tensor_input_do_not_change_values(lfw_faces):
    faces = lfw_faces[:9]
    other = _perturbed(faces)["rect"]
    base = ssim(faces, other)
    assert np.allclose(ssim(faces, other, chunk=1), base, atol=1e-7)
    assert np.allclose(ssim(torch.from_numpy(faces), torch.from_numpy(other)), base, atol=1e-7)
    assert np.allclose(ssim(faces.astype(np.float64), other.astype(np.float64)), base, atol=1e-6)


def test_hand_computed_cases():
    a = np.full((1, 32, 32, 3), 100, np.uint8)
    b = np.full((1, 32, 32, 3), 110, np.uint8)
    # MSE = 100 -> PSNR = 10 log10(255^2 / 100)
    assert psnr(a, b)[0] == pytest.approx(10 * np.log10(255**2 / 100), abs=1e-12)
    assert psnr(a, a)[0] == np.inf
    assert ssim(a, a)[0] == pytest.approx(1.0, abs=1e-7)
    # constant images: SSIM = luminance term (2 mu_x mu_y + C1) / (mu_x^2 + mu_y^2 + C1)
    c1 = (0.01 * 255) ** 2
    expect = (2 * 100 * 110 + c1) / (100**2 + 110**2 + c1)
    assert ssim(a, b)[0] == pytest.approx(expect, abs=1e-6)


def test_kernel_matches_scipy_definition():
    g = gaussian_kernel(1.5, 3.5)
    assert len(g) == 11 and g.sum() == pytest.approx(1.0)
    assert g[5] / g[4] == pytest.approx(np.exp(0.5 / 1.5**2))


def test_bad_shapes_are_clear_errors():
    with pytest.raises(ConfigError, match="differ in shape"):
        ssim(np.zeros((2, 20, 20, 3)), np.zeros((2, 20, 21, 3)))
    with pytest.raises(ConfigError, match="expected images"):
        psnr(np.zeros((20, 20)), np.zeros((20, 20)))
    with pytest.raises(ValueError, match="too small"):
        ssim(np.zeros((1, 8, 8, 3)), np.zeros((1, 8, 8, 3)))
