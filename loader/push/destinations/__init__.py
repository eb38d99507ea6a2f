"""The registry of destinations a push can send to: one `Route` a destination, each made
by the destination's own module here (its contract, client, settings schema, answer
classification and packing; see `loader.push.destination`).

A new destination is a module here, a line in `ROUTES`, a dbt folder
`models/destinations/<name>/` and a stand-in in `loader.emulator`; `route` is the one
place that picks the one a push uses.
"""

from __future__ import annotations

from loader.push.destination import ConfigurationError
from loader.push.destination import Route as Route
from loader.push.destinations import amplitude, events_api, mixpanel
from loader.push.destinations.events_api import Credentials as Credentials

ROUTES: dict[str, Route] = {
    r.name: r
    for r in (
        events_api.ROUTE,
        amplitude.ROUTE,
        mixpanel.ROUTE,
    )
}
EVENTS_API = events_api.ROUTE.name  # the default
DEFAULT_RATE = events_api.ROUTE.default_rate


def route(name: str) -> Route:
    try:
        return ROUTES[name]
    except KeyError:
        raise ConfigurationError(
            f"unknown destination {name!r}; use one of {', '.join(ROUTES)}"
        ) from None
