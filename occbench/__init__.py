"""occbench: benchmark occluded face recognition and blind face completion."""

__version__ = "0.1.0"
