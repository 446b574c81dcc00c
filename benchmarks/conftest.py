"""Benchmarks share the tests' real-data fixtures."""

from tests.conftest import data_root, lfw_faces  # noqa: F401
