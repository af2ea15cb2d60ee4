"""Entry point: the click group, every command registered on it here, and the rule that every
error is one line on stderr."""

from __future__ import annotations

import os
import sys
from typing import Any

import click

from entity_sync.handlers.errors import EntitySyncError
from entity_sync.operations.cli import console, demo, dlq, inspect, ops, publish, status, sync


class Group(click.Group):
    """Turns any escaping exception into one clear line and exit code 1 (2 for usage)."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except EntitySyncError as exc:
            _fail(f"{exc.reason}: {exc.message}")
        except KeyboardInterrupt:
            _fail("interrupted", code=130)
        except Exception as exc:
            if os.environ.get("ENTITY_SYNC_DEBUG"):
                raise
            _fail(f"{type(exc).__name__}: {_one_line(str(exc))} (ENTITY_SYNC_DEBUG=1 for details)")


def _one_line(text: str) -> str:
    line = " ".join(text.split())
    return line[:500] + ("..." if len(line) > 500 else "")


def _fail(message: str, code: int = 1) -> None:
    click.echo(f"entity-sync: error: {message}", err=True)
    sys.exit(code)


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="entity-sync")
def cli() -> None:
    """entity-sync: share billing objects across entities, and sync billing data into a CRM."""


def _sandbox() -> click.Command:
    sandbox: click.Command
    try:  # the SOAP sandboxes are a separate distribution: `pip install 'entity-sync[sandbox]'`
        from entity_sync_sandbox.cli import sandbox
    except ImportError:
        from entity_sync.operations.cli.missing import sandbox
    return sandbox


COMMANDS: tuple[click.Command, ...] = (
    ops.run,
    ops.topology,
    ops.db,
    publish.publish,
    status.status,
    dlq.dlq,
    sync.sync,
    inspect.entities,
    inspect.connections,
    inspect.settings_group,
    inspect.explain,
    demo.demo,
    console.console,
)
for command in (*COMMANDS, _sandbox()):
    cli.add_command(command)


def main() -> None:
    cli(prog_name="entity-sync")
