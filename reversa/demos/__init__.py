"""Built-in demo workflows (the core's own; adapters add theirs)."""
