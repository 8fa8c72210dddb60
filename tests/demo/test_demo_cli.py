"""``m5data demo-shop generate|serve``: argument checks (the generate path is tested in test_demo_shop)."""

from __future__ import annotations

from typer.testing import CliRunner

from m5data.demo.cli import app


def test_generate_rejects_bad_sizes_and_foreign_folders(tmp_path):
    runner = CliRunner()
    result = runner.invoke(app, ["generate", "--products", "5", "--out", str(tmp_path / "shop")])
    assert result.exit_code == 1 and "at least 10 products" in " ".join(result.output.split())
    (tmp_path / "mine.txt").write_text("not a shop")
    result = runner.invoke(app, ["generate", "--products", "10", "--out", str(tmp_path)])
    assert result.exit_code == 1 and "holds no demo shop" in " ".join(result.output.split())
    assert (tmp_path / "mine.txt").exists()


def test_serve_needs_a_generated_shop(tmp_path):
    result = CliRunner().invoke(app, ["serve", str(tmp_path), "--port", "0"])
    assert result.exit_code != 0 and isinstance(result.exception, FileNotFoundError)
