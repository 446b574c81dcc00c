"""Metric functions, one family a module (torchmetrics' functional style): pure functions of
arrays, each tested against an independent reference; the protocols of
:mod:`occbench.protocols` call them. Import them from their module (this package imports
nothing, so loading one metric never loads another's dependencies, e.g. torch for SSIM):

- :mod:`occbench.metrics.psnr` (``psnr``, ``mean_psnr``, ``PSNRMean``) and
  :mod:`occbench.metrics.ssim` (``ssim``, ``mean_ssim``): two batches of (N, H, W, 3) RGB
  images (numpy or torch; uint8, or floats on the 0..255 scale) -> per-image values, (N,)
  float64; ``mean_psnr`` reports the ``inf`` of identical images instead of folding it in.
- :mod:`occbench.metrics.iou`: ``mask_iou`` of predicted and true occlusion masks.
- :mod:`occbench.metrics.landmarks`: ``landmark_errors`` (NME / NMSE over the reference's
  outer-eye-corner distance).
"""
