"""The learned same-product matcher (issue 39): pair features, a gradient-boosted model saved as JSON,
training from crowd labels or a labels file, scoring pairs. docs/annotate.md "Matcher"."""
