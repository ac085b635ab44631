"""Alert builders, one module per SPEC 5 category: conditions and promtool scenarios.

Each category module lists its builders in ``BUILDERS``; :data:`BUILDERS` here is every
alert of ``alertdefs.ALERT_DEFS`` by name.
"""

from __future__ import annotations

from exporter.generate.rules.alertkit import Builder
from exporter.generate.rules.alerts import (
    availability,
    declines,
    inventory,
    messaging,
    monitoring,
    payments,
    pipeline,
    sales,
    webhooks,
)

BUILDERS: dict[str, Builder] = {
    **payments.BUILDERS,
    **declines.BUILDERS,
    **inventory.BUILDERS,
    **sales.BUILDERS,
    **messaging.BUILDERS,
    **webhooks.BUILDERS,
    **availability.BUILDERS,
    **monitoring.BUILDERS,
    **pipeline.BUILDERS,
}
