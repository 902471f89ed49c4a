#!/usr/bin/env python3
"""Print which of the box's packages import which, and any cycle between them.

    python3 scripts/import_graph.py            # the table and the cycles (exit 1 if there is one)
    python3 scripts/import_graph.py --modules  # also every module-level import edge between packages

Only the standard library is used, so it runs before the project is installed. Imports inside a
function count too: they are still a dependency, only a later one.
"""
from __future__ import annotations

import argparse
import ast
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TOP_LEVEL = ("appliance", "hw", "web")
# The packages the architecture names; every other module of appliance/ is the composition
# root: box, api, config, control and the CLI ("appliance"), which may import anything.
PACKAGES = ("sip", "calls", "media", "store", "crm", "lines", "system", "web", "hw")
# Leaf helpers of appliance/ that any package may use: they import no package above.
BASE = ("bus", "logs", "netinfo", "local_time")


def module_name(path: Path) -> str:
    """appliance/sip/core.py -> appliance.sip.core (a package's __init__ is the package)."""
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def package_of(module: str) -> str | None:
    """The architecture's package a module belongs to, or None outside the project."""
    parts = module.split(".")
    if parts[0] not in TOP_LEVEL:
        return None
    if parts[0] in ("hw", "web"):
        return parts[0]
    if len(parts) > 1 and parts[1] in PACKAGES:
        return parts[1]
    if len(parts) > 1 and parts[1] in BASE:
        return "base"
    return "appliance"


def imported_modules(path: Path) -> set[str]:
    """Every project module `path` imports, absolute or relative, at any depth of the file."""
    module = module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)] if node.level > 1 else base
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.add(target)
            # `from . import sdp` names a module, not an attribute.
            found.update(f"{target}.{alias.name}" for alias in node.names
                         if is_module(f"{target}.{alias.name}"))
    return {name for name in found if package_of(name) is not None}


def is_module(name: str) -> bool:
    """Whether a dotted name is a module or package of the project (not a class or function in one)."""
    path = ROOT.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def edges() -> dict[tuple[str, str], list[tuple[str, str]]]:
    """(from package, to package) -> the module pairs that make the edge."""
    graph: dict[tuple[str, str], list[tuple[str, str]]] = defaultdict(list)
    for top in TOP_LEVEL:
        for path in sorted((ROOT / top).rglob("*.py")):
            source = module_name(path)
            for target in sorted(imported_modules(path)):
                a, b = package_of(source), package_of(target)
                if a and b and a != b:
                    graph[(a, b)].append((source, target))
    return graph


def cycles(graph: dict[tuple[str, str], list]) -> list[list[str]]:
    """Strongly connected groups of more than one package (Tarjan's algorithm)."""
    adjacent: dict[str, set[str]] = defaultdict(set)
    for a, b in graph:
        adjacent[a].add(b)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(adjacent[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in sorted({n for pair in graph for n in pair}):
        if node not in index:
            visit(node)
    return groups


def main(argv: list[str] | None = None) -> int:
    """Print the package table (rows import columns) and the cycles."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--modules", action="store_true", help="list the module edges too")
    args = parser.parse_args(argv)
    graph = edges()
    names = [p for p in ("appliance", *PACKAGES, "base") if any(p in pair for pair in graph)]
    width = max(len(n) for n in names)
    print("imports ->".ljust(width + 2) + " ".join(n.rjust(9) for n in names))
    for a in names:
        cells = [str(len({t for _, t in graph[(a, b)]})) if (a, b) in graph else "." for b in names]
        print(a.ljust(width + 2) + " ".join(c.rjust(9) for c in cells))
    print("(a number: how many modules of the column's package the row's package imports)")
    if args.modules:
        for (a, b), pairs in sorted(graph.items()):
            print(f"\n{a} -> {b}")
            for source, target in pairs:
                print(f"  {source} -> {target}")
    found = cycles(graph)
    print()
    if not found:
        print("no cycle between packages")
        return 0
    for group in found:
        print("cycle between: " + ", ".join(group))
        for a in group:
            for b in group:
                if (a, b) in graph:
                    print(f"  {a} -> {b}: " + ", ".join(f"{s} -> {t}" for s, t in graph[(a, b)][:4]))
    return 1


if __name__ == "__main__":
    sys.exit(main())
