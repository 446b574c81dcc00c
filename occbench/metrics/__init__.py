"""Reconstruction metrics, one a file (torchmetrics style): per-image PSNR and SSIM."""

from occbench.metrics.psnr import psnr
from occbench.metrics.ssim import ssim

__all__ = ["psnr", "ssim"]
