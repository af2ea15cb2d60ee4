"""Prints which versions of the ecosystem's tools the run used (CI logs are the evidence)."""

from __future__ import annotations

import pytest

from tests.ecosystem import tools


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if tools.USED:
        terminalreporter.section("ecosystem tools")
        for tool, version in sorted(tools.USED.items()):
            terminalreporter.write_line(f"{tool}: {version}")
