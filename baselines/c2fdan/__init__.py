"""C2FDAN (Hörmann et al., "Coarse-to-Fine Dual Attention Network for Blind Face Completion",
FG 2021): generator (``model``), discriminators, losses, training task, completer adapter."""
