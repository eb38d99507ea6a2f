"""What a stand-in for a direct destination is to `loader emulate --api NAME`
(`loader.emulator.registry` lists them)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypedDict


class FaultSettings(TypedDict):
    """The fields every stand-in's config takes from `Faults`, by name."""

    port: int
    latency_ms: int
    share_429: float
    share_503: float
    share_drop: float
    seed: int
    script: list[str]


@dataclass(frozen=True)
class Faults:
    """What every stand-in takes from `loader emulate`'s common options."""

    db: Path | None
    port: int
    latency_ms: int
    share_429: float
    share_503: float
    share_drop: float
    seed: int
    script: list[str]

    def settings(self) -> FaultSettings:
        """All but `db`, as keyword arguments for a stand-in's config."""
        return FaultSettings(
            port=self.port,
            latency_ms=self.latency_ms,
            share_429=self.share_429,
            share_503=self.share_503,
            share_drop=self.share_drop,
            seed=self.seed,
            script=self.script,
        )


@dataclass(frozen=True)
class StandIn:
    name: str  # as `loader push --destination NAME`
    title: str  # printed with the URL once listening
    key_env: str  # the env var of the credential it accepts
    options: Mapping[str, str]  # --api-option NAME -> what it means
    # (credential, faults, --api-option values, stop, url_file, on_ready) -> the stand-in,
    # served until stop is set; it has summary()
    serve: Callable[
        [str, Faults, Mapping[str, str], threading.Event, Path | None, Callable[[Any], None]], Any
    ]
