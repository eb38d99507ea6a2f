"""The registry of stand-ins for direct destinations (`loader emulate --api NAME`): one
`StandIn` a destination, made by its module in this package."""

from __future__ import annotations

from loader.emulator import amplitude, mixpanel
from loader.emulator.http_core import EmulatorError
from loader.emulator.stand_in import StandIn

STAND_INS: dict[str, StandIn] = {s.name: s for s in (amplitude.STAND_IN, mixpanel.STAND_IN)}


def stand_in(name: str) -> StandIn:
    try:
        return STAND_INS[name]
    except KeyError:
        raise EmulatorError(f"--api {name}: use events or one of {', '.join(STAND_INS)}") from None
