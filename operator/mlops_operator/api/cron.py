"""Cron schedules (five fields: minute, hour, day of month, month, day of week; `*`, `*/n`, `a-b`, `a-b/n`,
lists), as Kubernetes CronJobs write them, in UTC; no names (`MON`) or macros (`@daily`)."""

from __future__ import annotations

import datetime as dt
import re

CRON_PATTERN = r"^\s*(\S+\s+){4}\S+\s*$"
_RANGES = ((0, 59), (0, 23), (1, 31), (1, 12), (0, 6))
_FIELD = re.compile(r"^(\*|\d+(-\d+)?)(/\d+)?$")


def _values(field: str, low: int, high: int) -> set[int]:
    found: set[int] = set()
    for part in field.split(","):
        match = _FIELD.match(part)
        if not match:
            raise ValueError(f"{part!r} is not a cron field (*, n, a-b, */n, a-b/n, lists)")
        span, step = match.group(1), int(match.group(3)[1:]) if match.group(3) else 1
        start, end = (low, high) if span == "*" else (int(span.split("-")[0]), int(span.split("-")[-1]))
        if not low <= start <= end <= high or step < 1:
            raise ValueError(f"{part!r} is outside {low}-{high}")
        found |= set(range(start, end + 1, step))
    return found


def parse_cron(expression: str) -> tuple[set[int], ...]:
    """The allowed values of each field; ValueError naming the field that is wrong."""
    fields = expression.split()
    if len(fields) != 5:
        raise ValueError(f"a schedule has 5 fields (minute hour day month weekday), {expression!r} has {len(fields)}")
    parsed = tuple(_values(f, low, high) for f, (low, high) in zip(fields, _RANGES, strict=True))
    weekdays = {0 if d == 7 else d for d in parsed[4]}
    return (*parsed[:4], weekdays)


def next_run(expression: str, after: dt.datetime) -> dt.datetime:
    """The first minute strictly after `after` the schedule names (cron's day-of-month/day-of-week rule:
    either matches when both are restricted)."""
    minutes, hours, days, months, weekdays = parse_cron(expression)
    any_day, any_weekday = len(days) == 31, len(weekdays) == 7
    moment = after.replace(second=0, microsecond=0) + dt.timedelta(minutes=1)
    for _ in range(366 * 24 * 60):
        if moment.month not in months:
            moment = (moment.replace(day=1, hour=0, minute=0) + dt.timedelta(days=32)).replace(day=1)
            continue
        day_ok = moment.day in days
        weekday_ok = (moment.isoweekday() % 7) in weekdays
        if not ((day_ok and weekday_ok) if any_day or any_weekday else (day_ok or weekday_ok)):
            moment = moment.replace(hour=0, minute=0) + dt.timedelta(days=1)
            continue
        if moment.hour not in hours:
            moment = moment.replace(minute=0) + dt.timedelta(hours=1)
            continue
        if moment.minute not in minutes:
            moment += dt.timedelta(minutes=1)
            continue
        return moment
    raise ValueError(f"{expression!r} names no minute within a year")
