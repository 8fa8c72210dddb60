"""The egress gate: what leaves the store for a person or a file."""
