"""Commands: bench (being written)."""
