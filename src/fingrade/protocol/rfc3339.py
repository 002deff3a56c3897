"""RFC 3339 date-times and dates: the one strict parser for every timestamp a client sends (RFC 9396
`expires_at` at the authorization server; the bank's query bounds and UK consent dates).

Why not `datetime.fromisoformat`: it accepts more than RFC 3339 (no offset, week dates, `,` for
`.`, non-ASCII digits through `int`), and converting an instant near the ends of the calendar to
UTC (`0001-01-01T00:00:00+01:00`, `9999-12-31T23:59:59-01:00`) raises OverflowError, which a
caller that expects ValueError turns into a server error. Here the grammar is matched first
(ASCII digits only, a bounded length), the fields are checked by range, and the instant is
computed with integer arithmetic: the only exception is `InvalidDateTime` (a ValueError), and
every value returned is an epoch second within years 1-9999 in UTC, so it can always be
formatted back and stored in a 64-bit integer column.

A leaf module (it imports nothing of ours): the AS core and the bank both use it.
"""

from __future__ import annotations

import datetime as dt
import re

MAX_LENGTH = 64  # the longest accepted text (a date-time with a 30-digit fraction is still shorter)
MIN_EPOCH = -62135596800  # 0001-01-01T00:00:00Z
MAX_EPOCH = 253402300799  # 9999-12-31T23:59:59Z
_ORDINAL_1970 = dt.date(1970, 1, 1).toordinal()

# RFC 3339 §5.6 (§5.6 NOTE: "T" and "Z" may be lower case). re.ASCII: [0-9] is ASCII anyway, and no
# class below may ever widen to other scripts' digits.
_DATE = r"([0-9]{4})-([0-9]{2})-([0-9]{2})"
_FULL_DATE = re.compile(_DATE, re.ASCII)
_DATE_TIME = re.compile(
    _DATE + r"[Tt]([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.[0-9]+)?"
    r"([Zz]|[+-][0-9]{2}:[0-9]{2})?",
    re.ASCII,
)


class InvalidDateTime(ValueError):
    """The text is not an RFC 3339 date-time (or date) this server can represent. Its message is a
    phrase to put after the field's name, safe to show to the client (it never quotes the input)."""


def _day(year: str, month: str, day: str) -> dt.date:
    try:
        return dt.date(int(year), int(month), int(day))  # checks 1 <= year, the month, the day of the month
    except ValueError:
        raise InvalidDateTime("is not a valid date") from None


def full_date(text: str) -> dt.date:
    """RFC 3339 §5.6 `full-date` (YYYY-MM-DD), years 1-9999."""
    m = _FULL_DATE.fullmatch(text) if isinstance(text, str) else None
    if m is None:
        raise InvalidDateTime("must be a date, e.g. 2026-01-31")
    return _day(*m.groups())


def date_time(text: str, *, offset_required: bool = True) -> int:
    """RFC 3339 §5.6 `date-time` as epoch seconds (UTC); a fraction of a second is dropped and a leap
    second (`:60`) counts as the second before it. `offset_required=False` also takes a date-time
    without an offset, as UTC (the bank's documented query form). Raises InvalidDateTime."""
    m = _DATE_TIME.fullmatch(text) if isinstance(text, str) and len(text) <= MAX_LENGTH else None
    if m is None or (offset_required and m.group(7) is None):
        raise InvalidDateTime(
            "must be an RFC 3339 date-time with an offset, e.g. 2027-02-25T00:00:00Z"
            if offset_required
            else "must be a date-time such as 2026-01-31T00:00:00Z"
        )
    year, month, mday, hour, minute, second, offset = m.groups()
    day = _day(year, month, mday)
    h, mi, s = int(hour), int(minute), int(second)
    if h > 23 or mi > 59 or s > 60:
        raise InvalidDateTime("is not a valid time of day")
    shift = 0
    if offset is not None and offset not in ("Z", "z"):
        oh, om = int(offset[1:3]), int(offset[4:6])
        if oh > 23 or om > 59:
            raise InvalidDateTime("has an invalid offset")
        shift = (oh * 3600 + om * 60) * (1 if offset[0] == "+" else -1)
    epoch = (day.toordinal() - _ORDINAL_1970) * 86400 + h * 3600 + mi * 60 + min(s, 59) - shift
    if not MIN_EPOCH <= epoch <= MAX_EPOCH:
        raise InvalidDateTime("is out of range (years 1 to 9999 in UTC)")
    return epoch


def day_bounds(day: dt.date) -> tuple[int, int]:
    """The first and the last second of a UTC day, as epoch seconds."""
    start = (day.toordinal() - _ORDINAL_1970) * 86400
    return start, start + 86399


def utc_date(epoch: int) -> dt.date:
    """The UTC day of an epoch second."""
    return dt.date.fromordinal(epoch // 86400 + _ORDINAL_1970)


def utc(epoch: int) -> str:
    """Epoch seconds as `YYYY-MM-DDTHH:MM:SSZ` (what every value of `date_time` can be formatted to)."""
    if not MIN_EPOCH <= epoch <= MAX_EPOCH:
        raise InvalidDateTime("is out of range (years 1 to 9999 in UTC)")
    t = dt.datetime(1970, 1, 1) + dt.timedelta(seconds=epoch)
    return f"{t.year:04d}-{t.month:02d}-{t.day:02d}T{t.hour:02d}:{t.minute:02d}:{t.second:02d}Z"  # %Y does not pad
