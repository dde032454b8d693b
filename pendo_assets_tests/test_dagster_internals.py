"""Dagster's private names stay behind one seam (pendo_assets/dagster_internals.py), so an
upgrade is one place to look: no ``dagster._`` anywhere else in the code, every private module a
configuration file names is listed there, and every listed name still exists."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

from pendo_assets import dagster_internals
from pendo_assets.dagster_internals import INTERNALS

REPO = Path(__file__).resolve().parents[1]
SEAM = REPO / "pendo_assets" / "dagster_internals.py"
PRIVATE = re.compile(r"\bdagster\._\w")
CONFIG_MODULE = re.compile(r"^\s*module:\s*(dagster\._[\w.]+)", re.MULTILINE)


def python_files() -> list[Path]:
    files = [
        p for d in ("pendo_assets", "pendo_assets_tests", "bench") for p in (REPO / d).rglob("*.py")
    ]
    assert len(files) > 50  # the walk found the code
    return files


def test_no_private_dagster_name_outside_the_seam():
    here = Path(__file__).resolve()
    offenders = [
        f"{p.relative_to(REPO)}:{n}: {line.strip()}"
        for p in python_files()
        if p.resolve() not in (SEAM, here)
        for n, line in enumerate(p.read_text().splitlines(), 1)
        if PRIVATE.search(line)
    ]
    assert offenders == [], "import these through pendo_assets/dagster_internals.py:\n" + "\n".join(
        offenders
    )


def test_configuration_files_name_only_listed_private_modules():
    listed = {entry.path.partition(":")[0] for entry in INTERNALS.values()}
    configs = list((REPO / "deploy").rglob("*.yaml"))
    assert configs
    named = {m for p in configs for m in CONFIG_MODULE.findall(p.read_text())}
    assert named <= listed, named - listed
    # deploy/local/dagster.yaml (what `make dev` writes) names no private module at all.
    assert CONFIG_MODULE.findall((REPO / "deploy" / "local" / "dagster.yaml").read_text()) == []


@pytest.mark.parametrize("name", sorted(INTERNALS))
def test_every_listed_name_exists_and_says_why(name):
    entry = INTERNALS[name]
    assert PRIVATE.match(entry.path) and ":" in entry.path, entry.path
    assert len(entry.why) > 40 and entry.upgrade, name
    assert getattr(dagster_internals, name) is dagster_internals.resolve(name)


def test_unknown_names_are_attribute_errors():
    with pytest.raises(AttributeError, match="no attribute 'NotAName'"):
        dagster_internals.NotAName  # noqa: B018


def test_loading_the_definitions_does_not_import_the_storage_internals():
    # The SQLite storage modules (~300 modules, about a second) are for processes that store
    # events; a code server that only loads the definitions never imports them.
    code = (
        "import sys; from pendo_assets.definitions import defs; defs(); "
        "print(sorted(m for m in sys.modules if m.startswith('dagster._core.storage.event_log')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO
    ).stdout.split("\n")
    assert out[-2] == "[]", out[-2]
