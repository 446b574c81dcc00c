"""What several test modules share to drive occbench as a user does: the command in a
subprocess, and the small real run (the occluded completer with dlib, rect at the eyes,
a = 0.1, the first SMALL_LIMIT images of each set) the run and reliability tests repeat."""

from __future__ import annotations

import os
import subprocess
import sys

SMALL_LIMIT = 30  # images of each set: a few FaceScrub people, 30 distractors, 30 LFW pairs
SMALL_RUN = ["--model", "occluded", "--position", "eyes", "--form", "rect", "--size", "0.1",
             "--quiet", "--limit", str(SMALL_LIMIT)]


def occbench_subprocess(*args, env: dict | None = None, inherit: bool = True, cwd=None,
                        prefix: tuple = (), timeout: float = 600) -> subprocess.CompletedProcess:
    """``occbench ARGS`` in a fresh Python process (``prefix``: e.g. a wrapper command), with
    ``env`` added to this process's environment (or, with ``inherit=False``, as its whole
    environment); its output captured as text."""
    environ = dict(os.environ, **(env or {})) if inherit else dict(env or {})
    return subprocess.run([*prefix, sys.executable, "-m", "occbench", *map(str, args)],
                          env=environ, cwd=cwd, capture_output=True, text=True,
                          timeout=timeout)
