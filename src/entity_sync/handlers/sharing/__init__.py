"""Multi-entity sharing (DESIGN.md §4)."""
