"""The destinations a push can send to: each a module with a `Destination` (see
`loader.push.destination`).

Only the Events API today. A new destination is a module here; `open_destination` (and the
planning defaults below it) is the one place that picks which one a push uses.
"""

from __future__ import annotations

from loader.push.destination import Destination
from loader.push.destinations.events_api import Credentials, EventsApiDestination
from loader.push.packing import PackingLimits, Validator

PACKING_LIMITS: PackingLimits = EventsApiDestination.limits
DEFAULT_RATE: float = EventsApiDestination.default_rate


def open_destination(endpoint: str, credentials: Credentials) -> Destination:
    """The destination a push sends to, at `endpoint`."""
    return EventsApiDestination(endpoint, credentials)


def default_validator() -> Validator | None:
    """The local checks of a batch before it is sent."""
    return EventsApiDestination.validator()
