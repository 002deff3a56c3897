"""What the parts of the SQL durable store share."""

from __future__ import annotations

import time
from typing import Any

import orjson

from fingrade.store.sql.db import Database


class SqlPart:
    """A part of the SQL durable store (one artifact); `SqlDurableStore` composes them."""

    db: Database


def dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def wall_clock() -> int:
    return int(time.time())
