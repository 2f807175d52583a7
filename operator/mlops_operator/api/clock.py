"""The one duration parser and the one timestamp format of the project.

Durations are Go-style (`1h30m`, `45s`, `250ms`), as the CRDs validate them. Timestamps in status are
RFC 3339 in UTC with milliseconds: pauses and intervals are timed from them, and whole seconds would
stretch or shorten a 3 s pause by up to a second.
"""

from __future__ import annotations

import datetime as dt
import re

_DURATION_PART = re.compile(r"([0-9.]+)(ms|s|m|h)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str) -> float:
    """Seconds in a Go-style duration."""
    return sum(float(n) * _UNIT_SECONDS[u] for n, u in _DURATION_PART.findall(text))


def format_time(moment: dt.datetime) -> str:
    """`2026-01-01T00:00:11.000Z`."""
    return moment.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_time(text: str | None) -> dt.datetime | None:
    """A timestamp as written by Kubernetes or by `format_time`; None stays None."""
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")) if text else None


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def seconds_between(start: str, end: str) -> float:
    """Seconds from one timestamp to another."""
    return (parse_time(end) - parse_time(start)).total_seconds()  # type: ignore[operator]
