"""Reconstruction metrics, one a file (torchmetrics style).

``psnr(a, b)`` and ``ssim(a, b)`` take two batches of (N, H, W, 3) RGB images (numpy or
torch; uint8, or floats on the 0..255 scale) and return per-image values, (N,) float64.
``mean_psnr`` and ``mean_ssim`` average them; ``mean_psnr`` reports the ``inf`` of identical
images instead of folding them into the mean.
"""

from occbench.metrics.psnr import PSNRMean, mean_psnr, psnr
from occbench.metrics.ssim import mean_ssim, ssim

__all__ = ["PSNRMean", "mean_psnr", "mean_ssim", "psnr", "ssim"]
