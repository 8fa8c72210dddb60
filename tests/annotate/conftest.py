"""Fixtures of the annotate tests only: the 300-product demo world (support/demo_fixtures.py), the input
of the dedup, match-level, crowd and matcher tests."""

from support.demo_fixtures import demo300, demo300_copy, demo300_judged  # noqa: F401  (the fixtures)
