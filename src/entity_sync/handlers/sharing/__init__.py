"""Multi-entity sharing (docs/design.md §4)."""
