"""The ecosystem's own tools (node's AsyncAPI parser and KEDA models, promtool, Prometheus,
kubernetes-validate), found where scripts/test installs them. Missing: skip locally, FAIL under
CI=true."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import NoReturn

from tests.support.services import unavailable

# The npm folder scripts/test installs @asyncapi/parser and @kubernetes-models/keda into (outside
# the package).
NPM_DIR = Path(
    os.environ.get("ENTITY_SYNC_NPM_DIR")
    or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "entity-sync" / "npm"
)


def missing(what: str) -> NoReturn:
    unavailable(f"{what} is missing; ./scripts/test installs it")


def executable(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        missing(name)
    assert path is not None
    return path


# tool -> version, as the tests used them; conftest prints it after the run.
USED: dict[str, str] = {}


def version(tool: str, argv: list[str]) -> str:
    """First line of a tool's --version output, remembered for the run's summary."""
    done = subprocess.run(argv, capture_output=True, text=True, check=True, timeout=60)
    USED[tool] = (done.stdout or done.stderr).splitlines()[0].strip()
    return USED[tool]


def npm_package(name: str) -> tuple[Path, str]:
    """(folder, version) of an npm package installed in NPM_DIR."""
    manifest = NPM_DIR / "node_modules" / name / "package.json"
    if not manifest.is_file():
        missing(f"npm package {name} in {NPM_DIR}")
    USED[name] = str(json.loads(manifest.read_text())["version"])
    return manifest.parent, USED[name]
