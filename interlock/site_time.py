"""The site calendar: dates and midnights in the site's time zone (UTC+8 by default), from integer ms timestamps."""

from __future__ import annotations

import datetime

DAY_MS = 86_400_000
_EPOCH_DATE = datetime.date(1970, 1, 1)


def site_day(ts: int, utc_offset_minutes: int) -> int:
    """Days since 1970-01-01 in the site calendar."""
    return (ts + utc_offset_minutes * 60_000) // DAY_MS


def site_date(ts: int, utc_offset_minutes: int) -> datetime.date:
    return _EPOCH_DATE + datetime.timedelta(days=site_day(ts, utc_offset_minutes))


def next_site_midnight(ts: int, utc_offset_minutes: int) -> int:
    """The first site-calendar midnight strictly after `ts`, in ms since the epoch."""
    return (site_day(ts, utc_offset_minutes) + 1) * DAY_MS - utc_offset_minutes * 60_000


def format_site_time(ts: int, utc_offset_minutes: int) -> str:
    """`2026-11-20 09:02:00.123` in site time, for timelines."""
    moment = datetime.datetime(1970, 1, 1) + datetime.timedelta(milliseconds=ts + utc_offset_minutes * 60_000)
    return moment.strftime("%Y-%m-%d %H:%M:%S.") + f"{moment.microsecond // 1000:03d}"
