"""The warnings about old events that `loader push` prints and `loader report` lists.

Three ages matter: the build's `warn_days` (many downstream tools drop older data), the
Events API's limit (`MAX_EVENT_AGE_DAYS`), and the build's `max_days` (older events are
skipped unless the build allows them; they may also age past it after the build).
"""

from __future__ import annotations

from collections.abc import Mapping

from loader.build_settings import AgeLimits

# exported: the report reads the limit from here (audit imports push only)
from loader.events_api.limits import MAX_EVENT_AGE_DAYS as MAX_EVENT_AGE_DAYS


def age_thresholds(limits: AgeLimits) -> list[int]:
    """The ages in days to count events older than, for `age_warnings`."""
    return sorted({limits.warn_days, MAX_EVENT_AGE_DAYS, limits.max_days})


def age_warnings(limits: AgeLimits, older_than: Mapping[int, int]) -> list[str]:
    """One sentence per age some events are older than; `older_than[days]` counts them."""
    warnings = []
    warn = older_than.get(limits.warn_days, 0)
    if warn:
        warnings.append(
            f"{warn:,} events are older than {limits.warn_days} days: mParticle advises "
            "replaying within 2 weeks; many downstream tools drop older data"
        )
    api = older_than.get(MAX_EVENT_AGE_DAYS, 0)
    if api:
        kept = (
            f" (this build keeps events up to {limits.max_days} days old: dbt var "
            "max_event_age_days)"
            if limits.max_days > MAX_EVENT_AGE_DAYS
            else ""
        )
        warnings.append(
            f"{api:,} events are older than {MAX_EVENT_AGE_DAYS} days: the Events API is for "
            f"data up to {MAX_EVENT_AGE_DAYS} days old{kept}"
        )
    too_old = older_than.get(limits.max_days, 0)
    if too_old and limits.max_days != MAX_EVENT_AGE_DAYS:
        warnings.append(
            f"{too_old:,} events are older than {limits.max_days} days, the age limit of this "
            "build (dbt var max_event_age_days)"
        )
    return warnings
