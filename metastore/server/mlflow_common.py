"""What the MLflow tracking calls (`mlflow_api`) and registry calls (`mlflow_registry`)
share: MLflow's error, times in milliseconds, required values, pages."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from metastore.errors import MetastoreError, NotFound


class MlflowError(Exception):
    """An answer in MLflow's error format: `{"error_code": code, "message": message}`."""

    def __init__(self, code: str, message: str, status: int = 400):
        super().__init__(message)
        self.code, self.message, self.status = code, message, status


def not_supported(what: str, hint: str = "") -> MlflowError:
    return MlflowError(
        "ENDPOINT_NOT_FOUND",
        f"metastore's MLflow API does not support {what}"
        + (f": {hint}" if hint else "")
        + " (see docs/integrations.md for the calls it supports)",
        404,
    )


def from_metastore(e: MetastoreError) -> MlflowError:
    message = e.message + (f" ({e.hint})" if getattr(e, "hint", None) else "")
    if isinstance(e, NotFound):
        return MlflowError("RESOURCE_DOES_NOT_EXIST", message, 404)
    return MlflowError("INVALID_PARAMETER_VALUE", message, 400)


def ms(t: datetime | None) -> int | None:
    if t is None:
        return None
    if t.tzinfo is None:
        t = t.replace(tzinfo=UTC)
    return int(t.timestamp() * 1000)


def need(data: dict, *names: str) -> Any:
    for name in names:
        value = data.get(name)
        if value not in (None, ""):
            return value
    raise MlflowError("INVALID_PARAMETER_VALUE", f"Missing value for required parameter '{names[0]}'")


def meta(version) -> dict:
    """A version's meta as a dict (rows keep it as JSON text, records as a dict)."""
    value = version.meta
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return {}
    return value if isinstance(value, dict) else {}


def offset(token) -> int:
    if not token:
        return 0
    try:
        value = int(str(token))
    except ValueError as e:
        raise MlflowError("INVALID_PARAMETER_VALUE", "invalid page_token") from e
    if value < 0:
        raise MlflowError("INVALID_PARAMETER_VALUE", "invalid page_token")
    return value


def token(at: int) -> str:
    return str(at)


def page(items: list, data: dict) -> tuple[list, str | None]:
    max_results = int(data.get("max_results") or 1000)
    start = offset(data.get("page_token"))
    chunk = items[start:start + max_results]
    return chunk, (token(start + max_results) if len(items) > start + max_results else None)
