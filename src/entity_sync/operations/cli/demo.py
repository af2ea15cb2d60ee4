"""`entity-sync demo`."""

from __future__ import annotations

from pathlib import Path

import click

from entity_sync import logs as wlog
from entity_sync.operations.cli.common import load_settings, table
from entity_sync.operations.demo import run_demo


@click.command()
@click.option(
    "--data-dir",
    type=click.Path(path_type=Path),
    default=None,
    help="Where the demo keeps its embedded state (default: <ENTITY_SYNC_DATA_DIR>/demo).",
)
def demo(data_dir: Path | None) -> None:
    """Run the sharing flow end to end on the embedded default and show what each target got."""
    settings = load_settings()
    wlog.configure("error", settings.log_format)  # the tables are the demo's output
    data_dir = data_dir or settings.data_dir / "demo"
    click.echo(f"entity-sync demo: embedded broker and state in {data_dir}/ (recreated)")
    report = run_demo(data_dir)
    click.echo(f"applied {report.applied} events; published {sum(report.outputs.values())} outputs")
    table(
        "what each target received, and why",
        ["target", "object", "holds", "prices", "why"],
        report.rows,
    )
    table(
        "outputs on entity-sync.out",
        ["routing key", "count"],
        [[k, v] for k, v in sorted(report.outputs.items())],
    )
    table("dead-lettered (rejected by the rules)", ["event", "reason"], report.dead_letters)
    table(
        "on-demand sync against the SOAP sandboxes",
        ["session", "crm account", "zuora id", "status", "upserted", "errors"],
        report.sync,
    )
    click.echo(
        "\nAsk why a target has or lacks an object:\n"
        f"  ENTITY_SYNC_DATA_DIR={data_dir} entity-sync explain --target acme-ch "
        f"--object AP-2027-01"
    )
