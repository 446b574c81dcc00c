"""The training loop shared by every model in ``baselines/`` (ResNet-50, C2FDAN, BVMR).

A *task* says what to train (model, data, loss); :func:`occbench.train.loop.train` does the
rest the same way for all of them: JSON configs, seeding, progress bar, periodic atomic
checkpoints and ``--resume``, mixed precision on GPU, torchrun data parallelism, and
safetensors weights with a provenance file beside them.
"""
