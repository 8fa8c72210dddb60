"""The import's sizes: how much it reads, stages, writes and keeps at a time (tests set them small;
the modules read them as ``limits.NAME`` at the time of use, so a test's value is seen)."""

BATCH = 50_000  # items checked and written at a time, and rows staged at a time (tests set it small)
STAGE_MEMORY = "512MB"  # DuckDB's memory limit for the staged entries (it spills into its temp folder past it)
MAX_FAILED = 1_000  # failure lines an ImportReport keeps (all are counted)
MAX_LINE = 1 << 20  # bytes of one split list line (after leading spaces); a longer one is no item id
READ_BYTES = 1 << 20  # bytes read from a layout file at a time
