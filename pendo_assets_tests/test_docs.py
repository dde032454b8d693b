"""The README and docs/ stay true: generated tables match the catalog, every page is reachable
from the README, every relative link lands on a file and heading that exist, the README stays a
front door, and CI runs the test command the README gives."""

import re
from pathlib import Path

import pytest

from pendo_assets.docs import BLOCKS, PAGE, block

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))
# [text](target), not images' alt text nor code: links inside backticks are not links.
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")


@pytest.mark.parametrize("name", sorted(BLOCKS))
def test_generated_tables_match_catalog(name):
    assert block(PAGE.read_text(), name) == BLOCKS[name](), (
        f"run: python -m pendo_assets.docs (rewrites the {name} table in {PAGE.name})"
    )


def test_readme_opens_with_the_two_commands():
    head = README.read_text()[:1500]
    assert "make dev" in head and "make test" in head


def test_readme_is_a_front_door():
    lines = README.read_text().splitlines()
    assert len(lines) <= 260, f"README has {len(lines)} lines: move reference text to docs/"


def test_ci_runs_the_readme_test_command():
    # The README's first code block names the test command; CI must run exactly that.
    first_block = README.read_text().split("```bash\n", 1)[1].split("```", 1)[0]
    readme_test = next(ln.split("#")[0].strip() for ln in first_block.splitlines() if "test" in ln)
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    commands = [ln.strip() for ln in ci if ln.strip() and not ln.lstrip().startswith("#")]
    assert commands[-1] == readme_test == "make test"


def test_every_docs_page_is_linked_from_the_readme():
    linked = {
        (README.parent / t.split("#")[0]).resolve()
        for t in LINK.findall(README.read_text())
        if not t.startswith(("http://", "https://", "#"))
    }
    assert DOCS, "docs/*.md pages are missing"
    assert [p.name for p in DOCS if p.resolve() not in linked] == []


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: the rendered text, lower case, punctuation dropped,
    spaces as hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link's text
    text = text.replace("`", "").strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)
    seen: dict[str, int] = {}
    out = set()
    for heading in re.findall(r"^#{1,6} (.+)$", text, flags=re.M):
        s = slug(heading)
        n = seen.get(s, 0)
        seen[s] = n + 1
        out.add(s if n == 0 else f"{s}-{n}")
    return out


def test_slug_follows_github():
    assert slug("`analytics`: entity history (SCD type 2)") == "analytics-entity-history-scd-type-2"
    assert slug("What's in the warehouse") == "whats-in-the-warehouse"


@pytest.mark.parametrize("page", [README, *DOCS], ids=lambda p: p.name)
def test_relative_links_resolve(page):
    text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)
    broken = []
    for target in LINK.findall(text):
        if target.startswith(("http://", "https://", "mailto:")):
            continue
        path, _, anchor = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        if not dest.exists():
            broken.append(target)
        elif anchor and (dest.suffix != ".md" or anchor not in anchors(dest)):
            broken.append(target)
    assert broken == [], f"{page.name}: links to nothing: {broken}"


def test_quick_tier_leaves_out_browser_postgres_bench_and_cli():
    # docs/development.md promises what `make test-quick` skips; the `slow` marker does it.
    makefile = (ROOT / "Makefile").read_text()
    assert '-m pytest -q -m "not slow"' in makefile.split("test-quick:", 1)[1].split("\n\n")[0]
    for module in (
        "test_browser",
        "test_ui_e2e",
        "test_deploy_run",
        "test_bench_smoke",
        "test_cli",
    ):
        source = (ROOT / "pendo_assets_tests" / f"{module}.py").read_text()
        assert re.search(r"^pytestmark = \[?\s*pytest\.mark\.slow", source, re.M), module
