"""The matcher stage (issue 39): training the learned same-product matcher from crowd labels or a labels
file (``job``, ``training``; ``cascade`` dedup's cheap first test), scoring pairs. Its pair features and
model format are shared with dedup (:mod:`..kernels`). docs/annotate.md "Matcher"."""
