"""Imports every sub-command module so that it registers on the `cli` group."""

from __future__ import annotations

import worker.cli.dlq
import worker.cli.sandbox  # noqa: F401
from worker.cli import demo, inspect, ops, publish, status, sync  # noqa: F401
