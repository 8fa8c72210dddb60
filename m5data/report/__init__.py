"""The static HTML report (docs/report.md): SQL over the store -> one index.html with local figures."""
