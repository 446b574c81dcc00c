"""The import graph of the ``occbench`` package, read from the source with ``ast`` (nothing is
imported, so it runs in a second on any machine):

    python tools/imports.py            # cycles, the longest chain, layer rule breaks
    python tools/imports.py --dot      # the graph in Graphviz dot (| dot -Tsvg > imports.svg)

Every ``import`` counts, at module level and inside functions (a deferred import hides a
cycle, it does not remove it); imports under ``if TYPE_CHECKING:`` (annotations only) do
not. Importing ``a.b.c`` also counts as importing the packages ``a`` and ``a.b`` (Python runs
their ``__init__`` first). Exit status 1 when there is a cycle or a low-level module imports
upward, so a test can hold the rule (``tests/test_imports.py``).
"""

from __future__ import annotations

import argparse
import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "occbench"

# Low-level rooms (faces, caches, data readers, metrics) must not import from these.
UPPER = ("occbench.protocols", "occbench.models", "occbench.train", "occbench.runner",
         "occbench.context", "occbench.sweep", "occbench.cli")
LOW = ("occbench.align", "occbench.faces", "occbench.aligned_cache", "occbench.landmarks68",
       "occbench.cachedb", "occbench.features", "occbench.data", "occbench.metrics",
       "occbench.imageio", "occbench.errors", "occbench.occlusion", "occbench.condition")


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted((ROOT / PACKAGE).rglob("*.py"))}


def _resolve(name: str, known: dict[str, Path]) -> str | None:
    """The longest known module that ``name`` (a module or ``module.attribute``) names."""
    while name:
        if name in known:
            return name
        name = name.rpartition(".")[0]
    return None


def _is_type_checking(node: ast.AST) -> bool:
    if not isinstance(node, ast.If):
        return False
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def edges(known: dict[str, Path]) -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {m: set() for m in known}
    for mod, path in known.items():
        is_pkg = path.name == "__init__.py"
        tree = ast.parse(path.read_text(), str(path))
        typing_only = {id(n) for block in ast.walk(tree) if _is_type_checking(block)
                       for stmt in block.body for n in ast.walk(stmt)}
        for node in ast.walk(tree):
            if id(node) in typing_only:
                continue  # ``if TYPE_CHECKING:`` imports never run
            targets = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = mod.split(".")
                    base = base[: len(base) - node.level + (1 if is_pkg else 0)]
                    prefix = ".".join(base + ([node.module] if node.module else []))
                else:
                    prefix = node.module or ""
                targets = [f"{prefix}.{a.name}" for a in node.names] or [prefix]
            for t in targets:
                hit = _resolve(t, known)
                # importing a.b.c runs a/__init__ and a/b/__init__ first: edges to those
                # packages too, except to the importer's own packages (already running)
                while hit:
                    if hit != mod and not mod.startswith(hit + "."):
                        graph[mod].add(hit)
                    hit = hit.rpartition(".")[0]
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = 0
    for start in graph:
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on.add(start)
        while work:
            node, it = work[-1]
            nxt = next(it, None)
            if nxt is None:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    comp = []
                    while True:
                        m = stack.pop()
                        on.discard(m)
                        comp.append(m)
                        if m == node:
                            break
                    if len(comp) > 1:
                        out.append(sorted(comp))
            elif nxt not in index:
                index[nxt] = low[nxt] = counter
                counter += 1
                stack.append(nxt)
                on.add(nxt)
                work.append((nxt, iter(sorted(graph[nxt]))))
            elif nxt in on:
                low[node] = min(low[node], index[nxt])
    return out


def longest_chain(graph: dict[str, set[str]]) -> list[str]:
    """The longest path of imports (the graph must be acyclic)."""
    memo: dict[str, list[str]] = {}

    def walk(m: str) -> list[str]:
        if m not in memo:
            memo[m] = [m] + max((walk(n) for n in sorted(graph[m])), key=len, default=[])
        return memo[m]

    return max((walk(m) for m in sorted(graph)), key=len)


def _in(mod: str, rooms: tuple[str, ...]) -> bool:
    return any(mod == r or mod.startswith(r + ".") for r in rooms)


def upward(graph: dict[str, set[str]]) -> list[tuple[str, str]]:
    """(low-level module, upper module it imports)."""
    return sorted((m, n) for m, ns in graph.items() for n in ns
                  if _in(m, LOW) and _in(n, UPPER))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dot", action="store_true", help="print the graph in Graphviz dot")
    args = p.parse_args(argv)
    graph = edges(modules())
    if args.dot:
        print("digraph occbench {\n  rankdir=LR; node [shape=box, fontsize=10];")
        for m in sorted(graph):
            for n in sorted(graph[m]):
                print(f'  "{m}" -> "{n}";')
        print("}")
        return 0
    found = cycles(graph)
    print(f"{len(graph)} modules, {sum(map(len, graph.values()))} imports between them")
    print(f"{len(found)} cycle(s)" + "".join(f"\n  {' <-> '.join(c)}" for c in found))
    bad = upward(graph)
    print(f"{len(bad)} low-level module(s) importing upward"
          + "".join(f"\n  {a} -> {b}" for a, b in bad))
    if not found:
        chain = longest_chain(graph)
        print(f"longest chain ({len(chain)} modules): {' -> '.join(chain)}")
    return 1 if found or bad else 0


if __name__ == "__main__":
    sys.exit(main())
