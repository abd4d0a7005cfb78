"""Commands: info (being written)."""
