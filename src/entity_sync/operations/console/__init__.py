"""The operations console: a browser face on the operations layer (docs/operations.md)."""
