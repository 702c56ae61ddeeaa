"""The store's settings: what everyone recording into one store shares, kept in the
store itself (table `store_config`, `metastore config set KEY VALUE`).

| key | value |
|---|---|
| `cost.per_hour` | the rate per hour of any machine without a rate of its own |
| `cost.per_hour.<host>` | the rate of one host (its name as `socket.gethostname()` gives it) |
| `cost.per_hour.<resource>` | the rate of a resource a run names with `METASTORE_RESOURCE` (`a100`, `spot-8cpu` …) |

A run's rate per hour (its `system.cost` = hours × rate) is, first found: the caller's
(`start_run(cost_per_hour=)`, `metastore run --cost-per-hour`), `METASTORE_COST_PER_HOUR`,
then the store's `cost.per_hour.<resource>`, `cost.per_hour.<host>`, `cost.per_hour`.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from metastore.errors import InvalidValue

if TYPE_CHECKING:
    from metastore.backends.base import Backend

COST_PREFIX = "cost.per_hour"
RESOURCE_ENV = "METASTORE_RESOURCE"


def check(key: str, value: str) -> str:
    """The text a setting is stored as; a known key's value must make sense."""
    text = str(value).strip()
    if key == COST_PREFIX or key.startswith(COST_PREFIX + "."):
        try:
            rate = float(text)
        except ValueError as e:
            raise InvalidValue(f"{key} is a number (money per hour), got {value!r}") from e
        if not rate >= 0 or rate == float("inf"):
            raise InvalidValue(f"{key} must be a finite number of 0 or more, got {value!r}")
        return repr(rate)
    return text


def set_setting(store: Backend, key: str, value) -> str:
    text = check(key, value)
    store.set_config(key, text)
    return text


def cost_rate(store: Backend, host: str | None, resource: str | None = None) -> float | None:
    """The store's rate per hour for `resource` (default METASTORE_RESOURCE), else `host`,
    else its default; None when the store sets none."""
    rates = store.get_config(COST_PREFIX)
    if not rates:
        return None
    resource = resource if resource is not None else os.environ.get(RESOURCE_ENV) or None
    for key in (f"{COST_PREFIX}.{resource}" if resource else None,
                f"{COST_PREFIX}.{host}" if host else None, COST_PREFIX):
        if key in rates:
            try:
                return float(rates[key])
            except ValueError as e:
                raise InvalidValue(f"the store's setting {key} is not a number: {rates[key]!r}",
                                   hint=f"metastore config set {key} 2.5") from e
    return None
