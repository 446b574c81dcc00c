"""The package's import graph (tools/imports.py, read with ``ast``): no cycle, and no
low-level module (faces, caches, data readers, metrics) importing from protocols, models,
training or the runner. Checked on hand-made graphs too, so the checker itself can fail."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tool():
    spec = importlib.util.spec_from_file_location("occbench_imports", ROOT / "tools" / "imports.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_the_package_has_no_import_cycle(tool):
    graph = tool.edges(tool.modules())
    assert "occbench.protocols.base" in graph and len(graph) > 50
    assert tool.cycles(graph) == []
    assert tool.upward(graph) == []
    assert tool.main([]) == 0


def test_the_checker_finds_cycles_and_upward_imports(tool):
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert tool.cycles(graph) == [["a", "b", "c"]]
    assert tool.cycles({"a": {"b"}, "b": set()}) == []
    assert tool.longest_chain({"a": {"b"}, "b": {"c"}, "c": set(), "d": {"c"}}) == ["a", "b", "c"]
    bad = {"occbench.metrics.x": {"occbench.protocols.y"}, "occbench.protocols.y": set()}
    assert tool.upward(bad) == [("occbench.metrics.x", "occbench.protocols.y")]


def test_the_checker_reads_deferred_and_package_imports(tool, tmp_path, monkeypatch):
    pkg = tmp_path / "occbench"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("from occbench import top\n")
    (pkg / "sub" / "leaf.py").write_text("X = 1\n")
    (pkg / "top.py").write_text("def f():\n    from occbench.sub.leaf import X\n    return X\n")
    (pkg / "typed.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                                  "    from occbench import top\n")
    monkeypatch.setattr(tool, "ROOT", tmp_path)
    graph = tool.edges(tool.modules())
    # the deferred import of sub.leaf runs sub/__init__, which imports top: a cycle
    assert graph["occbench.top"] == {"occbench.sub", "occbench.sub.leaf"}
    assert tool.cycles(graph) == [["occbench.sub", "occbench.top"]]
    assert graph["occbench.typed"] == set()
