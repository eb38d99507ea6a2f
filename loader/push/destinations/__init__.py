"""The destinations a push can send to: each a module with a `Destination` (see
`loader.push.destination`).

The Events API (the default) and Amplitude's Batch Event Upload API, a direct destination.
A new destination is a module here and a `Route` in `ROUTES`; `open_destination` (and
`route`) is the one place that picks which one a push uses.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from loader.push.destination import ConfigurationError, Destination
from loader.push.destinations import amplitude, events_api
from loader.push.destinations.events_api import Credentials as Credentials
from loader.push.destinations.events_api import EventsApiDestination
from loader.push.packing import Group, Pack, PackedBatch, PackingLimits, Validator

EVENTS_API = "events_api"
PACKING_LIMITS: PackingLimits = EventsApiDestination.limits
DEFAULT_RATE: float = EventsApiDestination.default_rate


@dataclass(frozen=True)
class Route:
    """What planning needs of a destination: which replay set, how batches are cut."""

    name: str
    service: str  # who answers, as the user knows it: "mParticle", "Amplitude"
    replay_table: str  # the dbt model the push reads
    key_prefix: str  # the ledger records its events as <key_prefix><replay_key>
    limits: PackingLimits
    default_rate: float
    validator: Validator | None
    pack: Pack  # a group into batches, in the destination's framing
    assemble: Callable[[Group, str], PackedBatch]  # an open batch again, under its id
    dry_run_body: Callable[[Iterable[bytes]], bytes]  # a request body, secrets masked


ROUTES = {
    EVENTS_API: Route(
        EVENTS_API,
        "mParticle",
        "replay_events",
        "",
        EventsApiDestination.limits,
        EventsApiDestination.default_rate,
        EventsApiDestination.validator(),
        events_api.pack_group,
        events_api.assemble,
        events_api.request_body,
    ),
    amplitude.NAME: Route(
        amplitude.NAME,
        "Amplitude",
        amplitude.REPLAY_TABLE,
        amplitude.KEY_PREFIX,
        amplitude.LIMITS,
        amplitude.DEFAULT_RATE,
        None,
        amplitude.pack_events,
        amplitude.assemble_event,
        amplitude.dry_run_body,
    ),
}


def route(name: str) -> Route:
    try:
        return ROUTES[name]
    except KeyError:
        raise ConfigurationError(
            f"unknown destination {name!r}; use one of {', '.join(ROUTES)}"
        ) from None


def open_destination(
    endpoint: str, credentials: Any, name: str = EVENTS_API, **settings: Any
) -> Destination:
    """The destination a push sends to, at `endpoint` (a URL from its `endpoint_url`)."""
    if name == amplitude.NAME:
        return amplitude.AmplitudeDestination(endpoint, credentials, **settings)
    return EventsApiDestination(endpoint, credentials)


def default_validator() -> Validator | None:
    """The local checks of a batch before it is sent."""
    return EventsApiDestination.validator()
