"""`python -m entity_sync.operations.cli`: the same as the `entity-sync` script."""

from entity_sync.operations.cli.main import main

main()
