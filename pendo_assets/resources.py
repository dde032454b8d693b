"""Dagster resources: the Pendo client as a typed ``ConfigurableResource``.

The integration key arrives through ``EnvVar("PENDO_INTEGRATION_KEY")``: Dagster resolves it
inside the run process, so it never appears in run config, the UI or logs.
"""

from __future__ import annotations

from zoneinfo import ZoneInfo

import dagster as dg
from pydantic import PrivateAttr

from pendo_assets.pendo.client import PendoClient
from pendo_assets.pendo.fetch import ENTITY_PAGE_FLOOR, ENTITY_PAGE_SIZE, FetchOptions
from pendo_assets.pendo.queries import Scope
from pendo_assets.settings import Settings, parse_app_ids


class PendoResource(dg.ConfigurableResource):
    """Talks to Pendo's Aggregation API (or the embedded emulator in demo mode)."""

    base_url: str
    integration_key: str
    app_ids: str = "*"
    timezone: str = "UTC"
    include_anonymous: bool = True
    apply_exclude_list: bool = True
    drop_columns: list[str] = []
    max_concurrency: int = 8
    days_per_request: int = 30
    request_timeout_s: float = 300.0
    max_retries: int = 6
    backoff_base_s: float = 1.0
    entity_page_size: int = ENTITY_PAGE_SIZE
    entity_page_floor: int = ENTITY_PAGE_FLOOR

    _client: PendoClient | None = PrivateAttr(default=None)
    _options: FetchOptions | None = PrivateAttr(default=None)

    @classmethod
    def from_settings(cls, settings: Settings, integration_key) -> PendoResource:
        return cls(
            base_url=settings.base_url,
            integration_key=integration_key,
            app_ids="*" if settings.app_ids is None else ",".join(map(str, settings.app_ids)),
            timezone=settings.timezone,
            include_anonymous=settings.include_anonymous,
            apply_exclude_list=settings.apply_exclude_list,
            drop_columns=sorted(settings.drop_columns),
            max_concurrency=settings.max_concurrency,
            days_per_request=settings.days_per_request,
            request_timeout_s=settings.request_timeout_s,
            max_retries=settings.max_retries,
            backoff_base_s=settings.retry_backoff_s,
        )

    @property
    def client(self) -> PendoClient:
        # One client per resource instance, so one bound on requests in flight per run.
        if self._client is None:
            self._client = PendoClient(
                self.base_url,
                self.integration_key,
                timeout_s=self.request_timeout_s,
                max_retries=self.max_retries,
                max_concurrency=self.max_concurrency,
                backoff_base_s=self.backoff_base_s,
            )
        return self._client

    def teardown_after_execution(self, context) -> None:
        if self._client is not None:
            self._client.close()

    @property
    def options(self) -> FetchOptions:
        """The typed fetch options, parsed from the fields once per resource instance."""
        if self._options is None:
            self._options = FetchOptions(
                scope=Scope(
                    app_ids=parse_app_ids(self.app_ids),
                    include_anonymous=self.include_anonymous,
                    apply_exclude_list=self.apply_exclude_list,
                ),
                zone=ZoneInfo(self.timezone),
                zone_name=self.timezone,
                drop_columns=frozenset(self.drop_columns),
                days_per_request=self.days_per_request,
                max_concurrency=self.max_concurrency,
                entity_page_size=self.entity_page_size,
                entity_page_floor=self.entity_page_floor,
            )
        return self._options
