"""Prefect tasks and flows: thin wrappers over the stages' run functions (see pipeline.py for the whole chain)."""
