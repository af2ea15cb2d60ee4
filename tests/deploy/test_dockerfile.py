"""deploy/Dockerfile, checked statically (no Docker engine runs where the tests run)."""

from __future__ import annotations

import re

from tests.deploy.conftest import DEPLOY, ROOT

DOCKERFILE = DEPLOY / "Dockerfile"


def _instructions() -> list[tuple[str, str]]:
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE.read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            out.append((keyword.upper(), rest.strip()))
    return out


def test_base_image_is_a_pinned_slim_python_3_11() -> None:
    args = dict(
        rest.split("=", 1) for keyword, rest in _instructions() if keyword == "ARG" and "=" in rest
    )
    image = args["PYTHON_IMAGE"]
    assert re.fullmatch(r"python:3\.11\.\d+-slim-\w+", image), image
    froms = [rest for keyword, rest in _instructions() if keyword == "FROM"]
    assert all(f.startswith("${PYTHON_IMAGE}") for f in froms)


def test_runs_as_a_non_root_user_with_a_healthcheck_on_healthz() -> None:
    instructions = _instructions()
    users = [rest for keyword, rest in instructions if keyword == "USER"]
    assert users
    assert users[-1].split(":")[0] not in {"root", "0"}
    (healthcheck,) = [rest for keyword, rest in instructions if keyword == "HEALTHCHECK"]
    assert "/healthz" in healthcheck
    assert "ENTITY_SYNC_METRICS_PORT" in healthcheck
    env = " ".join(rest for keyword, rest in instructions if keyword == "ENV")
    port = re.search(r"ENTITY_SYNC_METRICS_PORT=(\d+)", env)
    assert port
    assert ("EXPOSE", port.group(1)) in instructions
    assert ("ENTRYPOINT", '["entity-sync"]') in instructions
    assert ("CMD", '["run"]') in instructions


def test_copies_only_what_exists_and_what_the_package_needs() -> None:
    sources = []
    for keyword, rest in _instructions():
        if keyword == "COPY" and "--from" not in rest:
            sources += rest.split()[:-1]
    for source in sources:
        assert (ROOT / source).exists() or source == "README.md", source
    for package in ("src", "sandbox"):  # the package (src layout) and the sandbox distribution
        assert package in sources
    ignore = (DEPLOY / "Dockerfile.dockerignore").read_text().split()
    for source in sources:
        assert f"!{source}" in ignore or f"!{source}/" in ignore, source
