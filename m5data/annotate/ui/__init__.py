"""The local labelling web app for the papers' matching task (``m5data annotate serve``; docs/annotate.md)."""
