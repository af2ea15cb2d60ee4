"""Imports every sub-command module so that it registers on the `cli` group."""

from __future__ import annotations

import click

import entity_sync.operations.cli.dlq  # noqa: F401
from entity_sync.operations.cli import demo, inspect, ops, publish, status, sync  # noqa: F401
from entity_sync.operations.cli.main import cli

sandbox: click.Command
try:  # the SOAP sandboxes are a separate distribution: `pip install 'entity-sync[sandbox]'`
    from entity_sync_sandbox.cli import sandbox
except ImportError:
    from entity_sync.operations.cli.missing import sandbox

cli.add_command(sandbox)
