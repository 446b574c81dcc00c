"""Data sets: readers that yield stable image keys, identities and paths.

    from occbench.data import load_dataset
    ds = load_dataset("lfw", data_root)      # or "facescrub", "celeba", "megaface", "folder:NAME"
"""

from occbench.data.base import (
    Dataset,
    Sample,
    identity_labels,
    load_dataset,
    register_dataset,
)

__all__ = ["Dataset", "Sample", "identity_labels", "load_dataset", "register_dataset"]
