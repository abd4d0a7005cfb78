"""Commands: engine (being written)."""
