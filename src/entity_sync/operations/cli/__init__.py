"""The `entity-sync` command line."""
