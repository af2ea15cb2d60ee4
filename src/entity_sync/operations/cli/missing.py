"""`entity-sync sandbox` when the sandbox distribution is not installed: one clear line."""

from __future__ import annotations

import click

from entity_sync.handlers.errors import ConfigurationError
from entity_sync.operations.demo import INSTALL_HINT


@click.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
def sandbox() -> None:
    """Local SOAP sandboxes (needs `pip install 'entity-sync[sandbox]'`)."""
    raise ConfigurationError(INSTALL_HINT, reason="sandbox_missing")
