"""The asset graph in a real browser: Debian's chromium, driven by Playwright, opens the Dagster
UI that `make dev` serves, checks our asset names render, and saves a screenshot to
``test-artifacts/asset-graph.png``."""

from __future__ import annotations

import json
import os

import pytest

from pendo_assets.catalog import ENTITIES, EVENTS
from pendo_assets_tests.ui_server import REPO_ROOT, DagsterDev

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACT = REPO_ROOT / "test-artifacts" / "asset-graph.png"
GROUPS_QUERY = "{ assetNodes { assetKey { path } groupName } }"

# Left out of `make test-quick` (slow): Chromium on `dagster dev`.
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not os.path.exists(CHROMIUM),
        reason=f"{CHROMIUM} is missing: install it with `sudo apt-get install -y chromium` "
        "(Debian/Ubuntu; .ci/run does this) to run the browser test",
    ),
]


def open_asset_graph(page, server: DagsterDev) -> list[str]:
    """Open the global asset graph with every group expanded; return the asset names."""
    # Mark the first-visit community dialog as seen, as clicking "Skip" would.
    server.graphql("mutation { setNuxSeen }")
    nodes = server.graphql(GROUPS_QUERY)["assetNodes"]
    groups = sorted({n["groupName"] for n in nodes})
    # The UI keeps expanded groups in localStorage; seed it so the graph opens expanded.
    expanded = json.dumps({"expanded": ",".join(f"global@global:{g}" for g in groups)})
    page.add_init_script(
        "localStorage.setItem('asset-graph-open-graph-nodes-global-__GLOBAL__', "
        f"{json.dumps(expanded)}); localStorage.setItem('large-screen-nav-open', 'false');"
    )
    page.goto(server.url + "/asset-groups", wait_until="domcontentloaded")
    page.get_by_text("Global asset lineage").first.wait_for(timeout=60_000)
    return sorted({n["assetKey"]["path"][-1] for n in nodes})


def rendered_names(page) -> set[str]:
    return set(page.locator("[class*='AssetNode_assetName']").all_inner_texts())


def test_asset_graph_renders_our_assets_and_is_screenshotted(dagster_dev: DagsterDev):
    sync_api = pytest.importorskip("playwright.sync_api")
    width, height = 2000, 1200
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            names = open_asset_graph(page, dagster_dev)
            expected = {s.table for s in ENTITIES} | {s.table for s in EVENTS}
            assert expected <= set(names)
            page.locator("[class*='AssetNode_assetName']").first.wait_for(timeout=60_000)
            page.wait_for_timeout(1000)  # let the layout settle before the picture
            ARTIFACT.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(ARTIFACT))
            for group in ("pendo_entities", "pendo_raw_events", "analytics_events"):
                assert page.get_by_title(group).count() >= 1, group
            # The graph draws only the nodes in view: pan over it as a person would (drag
            # up, then down) and collect every asset name drawn.
            seen = rendered_names(page)
            for direction in [1] * 4 + [-1] * 12:
                if set(names) <= seen:
                    break
                page.mouse.move(width * 0.7, height / 2)
                page.mouse.down()
                page.mouse.move(width * 0.7, height / 2 + direction * 800, steps=5)
                page.mouse.up()
                page.wait_for_timeout(300)
                seen |= rendered_names(page)
            assert set(names) <= seen, f"not drawn in the asset graph: {set(names) - seen}"
        finally:
            browser.close()
    png = ARTIFACT.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(png) > 20_000  # a drawn graph, not a blank page
