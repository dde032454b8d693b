"""An embedded Pendo Aggregation API emulator: deterministic demo data over real HTTP.

``Subscription`` describes the emulated data, ``EmulatorServer`` serves it on
``POST /api/v1/aggregation`` and ``Faults`` injects failures. Run ``python -m
pendo_assets.emulator --port 8765`` for a standalone demo server.
"""

from pendo_assets.emulator.faults import Faults
from pendo_assets.emulator.server import EmulatorServer
from pendo_assets.emulator.subscription import Drift, EntityEdit, Subscription, TagChange

__all__ = ["Drift", "EmulatorServer", "EntityEdit", "Faults", "Subscription", "TagChange"]
