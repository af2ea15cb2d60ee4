"""Business rules: plain functions over explicit state, no channels, no delivery tags."""
