"""`fingrade serve` with SQL statements and commits counted (for `run.py --profile` only).

Counting is a SQLAlchemy event listener on every Engine and a listener on every driver-level
statement runner (fingrade/store/sql/direct.py), added from outside so the server's code is unchanged. On SIGUSR1 the counters are written to $FINGRADE_BENCH_COUNTS; the driver reads them
at the start and end of the measured window to report statements and transactions per operation.

    python bench/serve_counted.py [serve options]     # = fingrade serve --demo [options]
"""

from __future__ import annotations

import json
import os
import signal
import sys

from sqlalchemy import event
from sqlalchemy.engine import Engine

from fingrade.store.sql import direct

counts = {"seq": 0, "statements": 0, "commits": 0, "rollbacks": 0}


@event.listens_for(Engine, "before_cursor_execute")
def _statement(*_args: object) -> None:
    counts["statements"] += 1


@event.listens_for(Engine, "commit")
def _commit(*_args: object) -> None:
    counts["commits"] += 1


@event.listens_for(Engine, "rollback")
def _rollback(*_args: object) -> None:
    counts["rollbacks"] += 1


def _direct(statement: str) -> None:
    """The hot statements run on the driver, outside SQLAlchemy (fingrade/store/sql/direct.py)."""
    word = statement.split()[0].upper()
    if word == "COMMIT":
        counts["commits"] += 1
    elif word == "ROLLBACK":
        counts["rollbacks"] += 1
    elif word != "BEGIN":
        counts["statements"] += 1


_traced_init = direct.Traced.__init__


def _traced_counted(self: direct.Traced) -> None:
    _traced_init(self)
    self.listeners.append(_direct)


direct.Traced.__init__ = _traced_counted  # type: ignore[method-assign]


def _dump(_sig: int, _frame: object) -> None:
    counts["seq"] += 1
    path = os.environ["FINGRADE_BENCH_COUNTS"]
    with open(path + ".tmp", "w") as fh:
        json.dump(counts, fh)
    os.replace(path + ".tmp", path)


if __name__ == "__main__":
    signal.signal(signal.SIGUSR1, _dump)
    from fingrade.cli import main

    sys.exit(main(["serve", "--demo", *sys.argv[1:]]))
