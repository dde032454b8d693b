"""Re-take docs/asset-graph.png, the README's first picture: `make dev` in demo mode, Debian's
chromium (Playwright) on the global asset graph with every group collapsed, so the whole graph
fits and the groups (entities, raw events, enriched events, marts, report) read at a glance.

    .venv/bin/python docs/asset_graph_screenshot.py      # needs /usr/bin/chromium
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from playwright.sync_api import sync_playwright

from pendo_assets_tests.test_browser import CHROMIUM, CHROMIUM_ARGS
from pendo_assets_tests.ui_server import REPO_ROOT, start_dagster_dev

OUT = REPO_ROOT / "docs" / "asset-graph.png"
WIDTH, HEIGHT = 1600, 900


def main() -> int:
    server = start_dagster_dev(Path(tempfile.mkdtemp(prefix="asset-graph-")))
    try:
        server.graphql("mutation { setNuxSeen }")  # no first-visit dialog
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
            page = browser.new_page(viewport={"width": WIDTH, "height": HEIGHT})
            # No group expanded (the UI keeps that in localStorage), navigation collapsed.
            page.add_init_script(
                "localStorage.setItem('asset-graph-open-graph-nodes-global-__GLOBAL__', "
                "JSON.stringify({expanded: ''})); "
                "localStorage.setItem('large-screen-nav-open', 'false');"
            )
            page.goto(server.url + "/asset-groups", wait_until="domcontentloaded")
            page.get_by_text("Global asset lineage").first.wait_for(timeout=60_000)
            page.get_by_text("pendo_raw_events").first.wait_for(timeout=60_000)
            page.wait_for_timeout(2500)
            # The band with the five groups and their edges, under the page title.
            page.screenshot(path=str(OUT), clip={"x": 0, "y": 0, "width": WIDTH, "height": 600})
            browser.close()
    finally:
        server.stop()
    print(OUT)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
