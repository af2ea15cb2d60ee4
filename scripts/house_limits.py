#!/usr/bin/env python3
"""The house's size limits, which ruff cannot express: no module over 300 lines and no
function over 60 lines in the package, the sandboxes, the benchmarks and the tests.
(Complexity and argument counts are ruff's C90 and PLR0913; import cycles are checked by
tests/unit/test_import_cycles.py.) Exit 1 with one line per breach.

    python scripts/house_limits.py [FOLDER ...]
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

MAX_MODULE_LINES = 300
MAX_FUNCTION_LINES = 60
FOLDERS = ("src", "sandbox/entity_sync_sandbox", "benchmarks", "tests")
SKIP = ("migrations/versions",)  # Alembic revisions: generated shape, never edited afterwards


def breaches(path: Path) -> list[str]:
    text = path.read_text()
    found = []
    lines = len(text.splitlines())
    if lines > MAX_MODULE_LINES:
        found.append(f"{path}: {lines} lines (module limit {MAX_MODULE_LINES})")
    for node in ast.walk(ast.parse(text, str(path))):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            length = (node.end_lineno or node.lineno) - node.lineno + 1
            if length > MAX_FUNCTION_LINES:
                found.append(
                    f"{path}:{node.lineno}: {node.name} is {length} lines "
                    f"(function limit {MAX_FUNCTION_LINES})"
                )
    return found


def main(folders: list[str]) -> int:
    found = [
        line
        for folder in folders or FOLDERS
        for path in sorted(Path(folder).rglob("*.py"))
        if not any(skip in path.as_posix() for skip in SKIP)
        for line in breaches(path)
    ]
    for line in found:
        print(line)  # noqa: T201 - a check reports its findings
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
