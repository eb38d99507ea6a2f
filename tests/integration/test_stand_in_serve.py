"""Every direct destination's stand-in, served as `loader emulate --api NAME` serves it,
takes the common fault options (script, shares) and refuses bad ones alike."""

from __future__ import annotations

import re
import threading
from typing import Any

import pytest
import requests

from loader.emulator.http_core import EmulatorError
from loader.emulator.registry import STAND_INS
from loader.emulator.stand_in import Faults

KEY = "stand-in-key-0123"


def faults(**changes: Any) -> Faults:
    settings: dict[str, Any] = {
        "db": None,
        "port": 0,
        "latency_ms": 0,
        "share_429": 0.0,
        "share_503": 0.0,
        "share_drop": 0.0,
        "seed": 0,
        "script": [],
    }
    return Faults(**{**settings, **changes})


@pytest.mark.parametrize("name", sorted(STAND_INS))
@pytest.mark.parametrize(
    ("changes", "first_two"),
    [({"script": ["503"]}, "503 then checked"), ({"share_503": 1.0}, "503 twice")],
)
def test_the_common_fault_options_reach_each_stand_in(name, changes, first_two, tmp_path):
    stop = threading.Event()
    statuses: list[int] = []
    url_file = tmp_path / "url"

    def on_ready(emulator: Any) -> None:
        assert url_file.read_text().strip() == emulator.url
        for _ in range(2):  # unauthorised bodies: a request that is checked is refused
            statuses.append(requests.post(emulator.url, data=b"[]", timeout=10).status_code)
        stop.set()

    emulator = STAND_INS[name].serve(KEY, faults(**changes), {}, stop, url_file, on_ready)
    assert statuses[0] == 503
    if first_two == "503 twice":
        assert statuses[1] == 503
        assert emulator.summary().startswith("2 requests (2x503); 0 events accepted")
    else:
        assert statuses[1] in (400, 401)
        assert emulator.summary().startswith(f"2 requests (1x{statuses[1]}, 1x503); 0 events")
    assert not url_file.exists()


@pytest.mark.parametrize("name", sorted(STAND_INS))
@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"share_429": 0.7, "share_503": 0.5},
            "the shares of faults must be in [0, 1] and sum to at most 1",
        ),
        ({"share_drop": -0.1}, "the shares of faults must be in [0, 1] and sum to at most 1"),
        (
            {"script": ["503", "teapot"]},
            "unknown script entries teapot; use 429, 503, drop, drop-after, 200",
        ),
    ],
)
def test_bad_fault_options_are_refused_by_each_stand_in(name, changes, message):
    served: list[object] = []
    with pytest.raises(EmulatorError, match=re.escape(message)):
        STAND_INS[name].serve(KEY, faults(**changes), {}, threading.Event(), None, served.append)
    assert served == []
