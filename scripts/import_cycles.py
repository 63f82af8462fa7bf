#!/usr/bin/env python3
"""Finds import cycles between the modules (files) of Rust crates.

    python3 scripts/import_cycles.py crates/server/src [crates/cli/src ...]

A file imports another when it names an item through `crate::`, `super::`, `self::` or a child
module's name (in `use` declarations and in paths in code); `mod` declarations are not imports,
and neither is anything after `#[cfg(test)]` (a module's tests may reach anywhere). Each group of
files that import one another in a circle is printed, and the exit status is 1 if there is one.
"""

import re
import sys
from pathlib import Path

PATH = re.compile(r"\b((?:crate|super|self)(?:::[A-Za-z_][A-Za-z0-9_]*)+|[a-z_][a-z0-9_]*(?:::[A-Za-z_][A-Za-z0-9_]*)+)")
USE_GROUP = re.compile(r"\buse\s+((?:crate|super|self|[a-z_][a-z0-9_]*)(?:::[A-Za-z_][A-Za-z0-9_]*)*)::\{([^;]*)\};", re.S)


def module_path(src: Path, file: Path) -> tuple:
    """`crate/a/b.rs` and `crate/a/b/mod.rs` are module `a::b`; lib.rs and main.rs the root."""
    parts = list(file.relative_to(src).with_suffix("").parts)
    if parts[-1] in ("mod", "lib", "main"):
        parts.pop()
    return tuple(parts)


def code_of(text: str) -> str:
    """The text before the tests, without comments, string and character literals."""
    text = text.split("#[cfg(test)]", 1)[0]
    out, i, n = [], 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            i = text.find("\n", i)
            i = n if i < 0 else i
        elif text.startswith("/*", i):
            end = text.find("*/", i + 2)
            i = n if end < 0 else end + 2
        elif c == "r" and re.match(r'r#*"', text[i:]) and not (i and (text[i - 1].isalnum() or text[i - 1] == "_")):
            hashes = len(re.match(r"r(#*)", text[i:]).group(1))
            end = text.find('"' + "#" * hashes, i + 2 + hashes)
            i = n if end < 0 else end + 1 + hashes
            out.append('""')
        elif c == '"':
            i += 1
            while i < n and text[i] != '"':
                i += 2 if text[i] == "\\" else 1
            i += 1
            out.append('""')
        elif c == "'" and re.match(r"'(\\.[^']*|[^'\\])'", text[i:]):
            i += len(re.match(r"'(\\.[^']*|[^'\\])'", text[i:]).group(0))
            out.append("' '")
        else:
            out.append(c)
            i += 1
    return "".join(out)


def expand_groups(code: str) -> list:
    """`use a::{b, c::d}` as the paths `a::b`, `a::c::d` (one level of braces is enough here)."""
    paths = []
    for prefix, inner in USE_GROUP.findall(code):
        for item in inner.split(","):
            item = item.strip().split(" as ")[0].strip()
            if item and item != "self" and not item.startswith("{"):
                paths.append(f"{prefix}::{item}")
            elif item == "self":
                paths.append(prefix)
    return paths


def imports(src: Path, modules: dict, file: Path) -> set:
    here = module_path(src, file)
    code = code_of(file.read_text())
    found = set()
    for path in PATH.findall(code) + expand_groups(code):
        segments = path.split("::")
        if segments[0] == "crate":
            target = []
        elif segments[0] == "super":
            target = list(here)
            while segments and segments[0] == "super":
                target = target[:-1]
                segments = segments[1:]
            segments = ["super"] + segments
        elif segments[0] == "self":
            target = list(here)
        elif tuple(here) + (segments[0],) in modules:
            target, segments = list(here), ["self"] + segments
        else:
            continue  # another crate, or a local name
        # The longest prefix of the rest that is a module of this crate is what is imported.
        resolved = tuple(target)
        for segment in segments[1:]:
            if resolved + (segment,) in modules:
                resolved = resolved + (segment,)
            else:
                break
        if resolved != here and resolved in modules:
            found.add(resolved)
    return found


def cycles(src: Path) -> list:
    files = sorted(src.rglob("*.rs"))
    modules = {module_path(src, f): f for f in files}
    graph = {m: imports(src, modules, f) for m, f in modules.items()}
    # Tarjan's strongly connected components.
    index, low, stack, on_stack, groups = {}, {}, [], set(), []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for succ in graph[node]:
            if succ not in index:
                visit(succ)
                low[node] = min(low[node], low[succ])
            elif succ in on_stack:
                low[node] = min(low[node], index[succ])
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

    sys.setrecursionlimit(10_000)
    for node in graph:
        if node not in index:
            visit(node)
    return [[str(modules[m].relative_to(src)) for m in group] for group in groups]


def main() -> int:
    status = 0
    for arg in sys.argv[1:]:
        for group in cycles(Path(arg)):
            print(f"{arg}: import cycle between {', '.join(group)}", file=sys.stderr)
            status = 1
    return status


if __name__ == "__main__":
    sys.exit(main())
