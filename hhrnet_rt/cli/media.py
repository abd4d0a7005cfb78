"""Commands: media (being written)."""
