"""The README's sources table is generated from the catalog and kept in step with it."""

from pathlib import Path

from pendo_assets.docs import sources_table

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_sources_table_matches_catalog():
    text = README.read_text()
    block = text.split("<!-- sources:start -->\n", 1)[1].split("\n<!-- sources:end -->", 1)[0]
    assert block == sources_table(), "run: python -m pendo_assets.docs and paste into README"


def test_readme_opens_with_the_two_commands():
    head = README.read_text()[:1500]
    assert "make dev" in head and "make test" in head
