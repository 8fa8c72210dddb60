"""The egress gate: what leaves the store for a person or a file (gate.py: the order and the rules'
entry points; video.py: the check of a video's own frames for faces)."""
