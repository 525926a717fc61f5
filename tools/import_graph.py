"""hotcfg's import graph: its circles, its largest modules, and the rules.

Usage: python tools/import_graph.py [--json] [PACKAGE_DIR]

Reads every module under PACKAGE_DIR (default: hotcfg/ beside this file's
folder) as text, never importing it, and counts every import of the package's
own modules: at module level, inside functions and under ``TYPE_CHECKING``
alike, since a circle that only a lazy import closes is still a circle a
reader has to hold in mind. Prints the circles (strongly connected
components), the largest modules, and every break of the directory rules
written in docs/contributing/architecture.md. Exits 1 when there is a circle or a broken
rule, so CI and tests/unit/test_architecture.py can run it as it is.
"""

from __future__ import annotations

import argparse
import ast
import json
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

#: (importer's directory, imported directory, why): no module under the
#: first may import one under the second.
FORBIDDEN = (
    ("_segment", "_sources", "the segment is shared by both sides"),
    ("_segment", "_master", "the segment is shared by both sides"),
    ("_segment", "_worker", "the segment is shared by both sides"),
    ("_content", "_sources", "content is pure: bytes in, a mapping out"),
    ("_content", "_master", "content is pure: bytes in, a mapping out"),
    ("_content", "_worker", "content is pure: bytes in, a mapping out"),
    ("_worker", "_master", "a worker never runs the publisher"),
    ("_worker", "_sources", "a worker never reads a source"),
    ("_sources", "_master", "a source never decides what is published"),
    ("_sources", "_worker", "a source runs in the master only"),
    ("_segment", "cli", "the CLI sits on top"),
    ("_content", "cli", "the CLI sits on top"),
)

#: Pure modules: no clock, no I/O, no processes. A module is pure by where it
#: lives (every module of these directories, but the named exceptions).
PURE_DIRS = ("_segment", "_content")
PURE_MODULES = (
    "_sources.locations",
    "_sources.debounce",
    "_sources.http.rules",
    "_sources.http.proxies",
    "_sources.etcd.keytree",
    "_sources.etcd.rollout",
    "_sources.etcd.track",
    "cli.fleet_view",
)
IMPURE_IN_PURE_DIRS = ("_segment.shm", "_segment.slots", "_segment.where")
IMPURE_STDLIB = ("os", "mmap", "signal", "threading", "time", "socket", "select")

#: What a worker runs on every request, and what none of it may load when
#: imported: the file watcher, network clients (etcd and HTTP speak through
#: ``http.client`` and ``ssl``), or anything of the master's or the sources'
#: but their pure modules (the settings parse source strings with the grammar
#: in ``_sources.locations``). The applier's local socketpair is no network
#: client: ``socket`` alone is allowed.
REQUEST_PATH = ("_api", "_worker.reader", "_segment")
NOT_ON_REQUEST_PATH = (
    "watchdog",
    "ssl",
    "http",
    "urllib.request",
    "_sources",
    "_master",
)


@dataclass(frozen=True)
class Module:
    name: str  # dotted, without the package's own name: "_segment.layout"
    path: Path
    is_package: bool
    lines: int


def modules(root: Path) -> dict[str, Module]:
    found = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        if is_package:
            parts = parts[:-1]
        name = ".".join(parts)
        lines = len(path.read_text(encoding="utf-8").splitlines())
        found[name] = Module(name, path, is_package, lines)
    return found


def _resolve(module: Module, level: int, target: str | None) -> str:
    base = module.name.split(".") if module.name else []
    if not module.is_package:
        base = base[:-1]
    if level > 1:
        base = base[: len(base) - (level - 1)]
    return ".".join([*base, *([target] if target else [])])


def imports(
    module: Module, package: str, *, top_level_only: bool = False
) -> Iterator[tuple[str, int, bool]]:
    """(imported name, line, own): own names are dotted within the package;
    other names are dotted in full ("os", "urllib.parse"). Every import
    in the module, or only those at its top level (what importing it runs)."""
    tree = ast.parse(module.path.read_text(encoding="utf-8"))
    nodes = tree.body if top_level_only else ast.walk(tree)
    for node in nodes:
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == package or alias.name.startswith(package + "."):
                    yield alias.name[len(package) + 1 :], node.lineno, True
                else:
                    yield alias.name, node.lineno, False
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = _resolve(module, node.level, node.module)
            elif node.module and (
                node.module == package or node.module.startswith(package + ".")
            ):
                base = node.module[len(package) + 1 :]
            else:
                yield node.module or "", node.lineno, False
                continue
            for alias in node.names:
                yield (
                    (f"{base}.{alias.name}" if base else alias.name),
                    node.lineno,
                    True,
                )


def graph(
    found: dict[str, Module], package: str, *, top_level_only: bool = False
) -> dict[str, set[str]]:
    """Module -> the modules of the package it imports. ``from . import x``
    names module x where x is one; otherwise the module that defines x."""
    edges: dict[str, set[str]] = {name: set() for name in found}
    for name, module in found.items():
        for target, _line, own in imports(
            module, package, top_level_only=top_level_only
        ):
            if not own:
                continue
            while target and target not in found:
                target = target.rpartition(".")[0]
            if target and target != name:
                edges[name].add(target)
    return edges


def circles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module, or of one
    that imports itself (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for start in sorted(edges):
        if start in index:
            continue
        work = [(start, iter(sorted(edges[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1 or node in edges.get(node, ()):
                    found.append(sorted(component))
    return sorted(found)


def _under(name: str, directory: str) -> bool:
    return name == directory or name.startswith(directory + ".")


def _pure(name: str) -> bool:
    if name in PURE_MODULES:
        return True
    return any(_under(name, d) for d in PURE_DIRS) and not any(
        _under(name, m) for m in IMPURE_IN_PURE_DIRS
    )


def _defining_module(found: dict[str, Module], target: str) -> str:
    """The module an import of ``target`` loads: itself, or the module that
    defines the name ``target`` ends in."""
    while target and target not in found:
        target = target.rpartition(".")[0]
    return target


def reachable(edges: dict[str, set[str]], starts: Iterable[str]) -> set[str]:
    seen: set[str] = set()
    todo = [s for s in starts if s in edges]
    while todo:
        node = todo.pop()
        if node not in seen:
            seen.add(node)
            todo.extend(edges[node])
    return seen


def broken_rules(found: dict[str, Module], package: str) -> list[str]:
    edges = graph(found, package)
    broken = []
    for name in sorted(found):
        for target in sorted(edges[name]):
            for low, high, why in FORBIDDEN:
                if _under(name, low) and _under(target, high):
                    broken.append(f"{name} imports {target}: {why}")
        if _pure(name):
            for target, line, own in imports(found[name], package):
                if not own and any(_under(target, bad) for bad in IMPURE_STDLIB):
                    broken.append(f"{name}:{line} imports {target}: a pure module")
    # The request path, module-level imports only: what a worker's get()
    # loads. A lazy import inside a master-only function is not on it.
    level = graph(found, package, top_level_only=True)
    request = {name for name in found if any(_under(name, s) for s in REQUEST_PATH)}
    for name in sorted(reachable(level, request)):
        for target, line, own in imports(found[name], package, top_level_only=True):
            shown = target if not own else f"{package}.{target}"
            # A pure module (the source grammar) runs nothing: it may be read.
            if own and _pure(_defining_module(found, target)):
                continue
            if any(target == bad or _under(target, bad) for bad in NOT_ON_REQUEST_PATH):
                broken.append(
                    f"{name}:{line} imports {shown}: on a worker's request path"
                )
    return broken


def report(root: Path) -> dict[str, object]:
    package = root.name
    found = modules(root)
    edges = graph(found, package)
    largest = sorted(found.values(), key=lambda m: -m.lines)[:5]
    return {
        "modules": len(found),
        "lines": sum(m.lines for m in found.values()),
        "imports": sum(len(v) for v in edges.values()),
        "circles": circles(edges),
        "largest": [(m.name or package, m.lines) for m in largest],
        "broken": broken_rules(found, package),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "root",
        nargs="?",
        type=Path,
        default=Path(__file__).resolve().parent.parent / "hotcfg",
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    answer = report(args.root)
    if args.json:
        print(json.dumps(answer, indent=2))
    else:
        print(
            f"{answer['modules']} modules, {answer['lines']} lines, "
            f"{answer['imports']} imports between them"
        )
        print(f"circles: {len(answer['circles'])}")
        for circle in answer["circles"]:
            print("  " + " -> ".join(circle))
        print("largest: " + ", ".join(f"{n} {c}" for n, c in answer["largest"]))
        print(f"broken rules: {len(answer['broken'])}")
        for line in answer["broken"]:
            print("  " + line)
    return 1 if answer["circles"] or answer["broken"] else 0


if __name__ == "__main__":
    sys.exit(main())
