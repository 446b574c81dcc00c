"""Worker processes: Ctrl-C stops the main process quietly, not every worker with a traceback."""

from __future__ import annotations

import signal


def ignore_interrupt() -> None:
    """Initializer of every pool worker: ignore SIGINT. Ctrl-C in a terminal reaches the whole
    process group; the main process alone turns it into ``occbench: interrupted`` (exit 130)
    and stops its pools, so the workers have nothing to print."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
