"""The clocks and calendars certstore reads: UTC for records, China Standard Time for printed dates.

Owned here so issuance, reading and verification agree on what "today" is.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

__all__ = ["CHINA_STANDARD_TIME", "Clock", "aware", "china_date", "utcnow"]

Clock = Callable[[], dt.datetime]

CHINA_STANDARD_TIME = dt.timezone(dt.timedelta(hours=8), "CST")


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def aware(value: dt.datetime) -> dt.datetime:
    """SQLite hands back naive datetimes; everything stored is UTC."""
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def china_date(moment: dt.datetime) -> dt.date:
    """The calendar date printed on a certificate: China Standard Time, not UTC."""
    return aware(moment).astimezone(CHINA_STANDARD_TIME).date()
