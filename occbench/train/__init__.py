"""The training loop shared by every model in ``baselines/`` (ResNet-50, C2FDAN, BVMR).

A *task* says what to train (network, data, loss); :func:`occbench.train.loop.train` does
the rest the same way for all of them: JSON configs, seeding, progress bar, periodic atomic
checkpoints and resume, mixed precision on GPU, torchrun data parallelism, and safetensors
weights with a provenance file beside them. :mod:`occbench.train.data` serves aligned,
labelled CelebA faces with flips and training occlusions; :func:`occbench.train.cli.train_main`
is ``occbench train``.
"""

from occbench.train.loop import TrainConfig, train

__all__ = ["TrainConfig", "train"]
