"""deploy/dagster.yaml is a valid Dagster instance config, and the MotherDuck path of the
"beyond one machine" setup is accepted by our settings (validated, never connected: MotherDuck
needs the network).

The whole document is checked the way Dagster loads an instance
(``dagster_instance_config``: schema, storage/run-queue/concurrency rules). Each pluggable class
is then imported and its own config validated with its ``config_type()`` when the class is
installed here: PostgreSQL storage (the ``postgres`` extra) and the QueuedRunCoordinator are;
``dagster_k8s.K8sRunLauncher`` ships in the Helm chart's images, not in this package, so for it
only the fields this project relies on are asserted.
"""

from __future__ import annotations

import importlib
import importlib.util
import shutil
from pathlib import Path

import pytest
import yaml

from pendo_assets.dagster_internals import (
    dagster_instance_config,
    process_config,
    resolve_to_config_type,
)
from pendo_assets.settings import SettingsError, load_settings

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
PG_ENV = {
    "DAGSTER_PG_HOST": "postgres.internal",
    "DAGSTER_PG_DB": "dagster",
    "DAGSTER_PG_USERNAME": "dagster",
    "DAGSTER_PG_PASSWORD": "not-a-real-password",
}
K8S_ENV = {
    "DAGSTER_K8S_INSTANCE_CONFIG_MAP": "dagster-instance",
    "DAGSTER_K8S_PG_PASSWORD_SECRET": "dagster-postgresql-secret",
    "DAGSTER_K8S_JOB_NAMESPACE": "dagster",
    "DAGSTER_K8S_JOB_SERVICE_ACCOUNT": "dagster",
}


@pytest.fixture()
def instance_config(tmp_path, monkeypatch) -> dict:
    for k, v in {**PG_ENV, **K8S_ENV, "DAGSTER_HOME": str(tmp_path)}.items():
        monkeypatch.setenv(k, v)
    shutil.copy(DEPLOY / "dagster.yaml", tmp_path / "dagster.yaml")
    config, custom_class = dagster_instance_config(str(tmp_path))
    assert custom_class is None
    return dict(config)


def raw() -> dict:
    return yaml.safe_load((DEPLOY / "dagster.yaml").read_text())


def class_config_errors(section: dict) -> list[str]:
    """Validate one {module, class, config} section with the class's own schema."""
    cls = getattr(importlib.import_module(section["module"]), section["class"])
    result = process_config(resolve_to_config_type(cls.config_type()), section.get("config") or {})
    return [e.message for e in result.errors or []]


def test_deploy_config_passes_dagsters_instance_schema(instance_config):
    assert set(instance_config) >= {"storage", "run_coordinator", "run_launcher", "concurrency"}


def test_storage_is_postgres_from_environment_variables(instance_config):
    pytest.importorskip("dagster_postgres", reason="pip install -e '.[postgres]'")
    from dagster_postgres import DagsterPostgresStorage
    from dagster_postgres.utils import pg_url_from_config

    pg = raw()["storage"]["postgres"]
    # Every connection detail comes from the environment, nothing is written in the file.
    for field in ("hostname", "db_name", "username", "password"):
        assert set(pg["postgres_db"][field]) == {"env"}, field
    result = process_config(resolve_to_config_type(DagsterPostgresStorage.config_type()), pg)
    assert result.success, result.errors
    url = pg_url_from_config(result.value)
    assert url.startswith(
        "postgresql+psycopg2://dagster:not-a-real-password@postgres.internal:5432/"
    )
    assert "sslmode=require" in url


def test_queued_run_coordinator_config_is_valid():
    section = raw()["run_coordinator"]
    assert section["class"] == "QueuedRunCoordinator"
    assert class_config_errors(section) == []


def test_one_writer_per_duckdb_database(instance_config):
    """Run-granularity pools with a default limit of 1, and every warehouse-writing asset in
    its database's pool."""
    pools = instance_config["concurrency"]["pools"]
    assert pools == {"granularity": "run", "default_limit": 1}

    from pendo_assets.definitions import build_definitions

    settings = load_settings({"PENDO_DUCKDB_PATH": "data/pendo_warehouse.duckdb"})
    defs = build_definitions(settings)
    op_pools = {
        key.to_user_string(): a.node_def.pool
        for a in defs.assets or []
        if a.is_executable  # the side tables are written by the assets upstream of them
        for key in a.keys
    }
    assert op_pools, "no assets"
    assert set(op_pools.values()) == {"duckdb_pendo_warehouse"}, op_pools


def test_run_launcher_is_the_helm_charts_k8s_launcher():
    section = raw()["run_launcher"]
    assert (section["module"], section["class"]) == ("dagster_k8s", "K8sRunLauncher")
    config = section["config"]
    # The names the Helm chart gives these values in its pods' environment.
    assert config["instance_config_map"] == {"env": "DAGSTER_K8S_INSTANCE_CONFIG_MAP"}
    assert config["postgres_password_secret"] == {"env": "DAGSTER_K8S_PG_PASSWORD_SECRET"}
    assert config["dagster_home"] == {"env": "DAGSTER_HOME"}
    assert "pendo-assets-env" in config["env_secrets"]
    assert "DAGSTER_EVENT_BATCH_SIZE=1000" in config["env_vars"]  # run pods batch events
    if importlib.util.find_spec("dagster_k8s") is not None:
        assert class_config_errors(section) == []


def test_installed_pluggable_classes_load_with_their_config():
    doc = raw()
    for name in ("run_coordinator", "compute_logs"):
        assert class_config_errors(doc[name]) == [], name


def test_motherduck_path_is_accepted_and_maps_to_its_own_pool():
    settings = load_settings({"PENDO_DUCKDB_PATH": "md:pendo"})
    assert settings.duckdb_path == "md:pendo"
    assert settings.warehouse_pool == "duckdb_pendo"
    # A token in the path never reaches the pool name (pools show in the UI and logs).
    tokened = load_settings({"PENDO_DUCKDB_PATH": "md:pendo?motherduck_token=s3cr3t"})
    assert "s3cr3t" not in tokened.warehouse_pool
    assert load_settings({"PENDO_DUCKDB_PATH": "motherduck:team_db"}).duckdb_path == (
        "motherduck:team_db"
    )
    with pytest.raises(SettingsError, match="PENDO_DUCKDB_PATH"):
        load_settings({"PENDO_DUCKDB_PATH": "md:"})


def test_motherduck_warehouse_is_remote_and_takes_no_file_lock():
    from pendo_assets.warehouse.store import Warehouse

    wh = Warehouse("md:pendo")
    assert wh.remote
    assert not hasattr(wh, "_file_lock")
