"""Where the Events API lives: one base URL per pod (data region), and its bulk path."""

from __future__ import annotations

PODS = {
    "us1": "https://s2s.mparticle.com/v2",
    "us2": "https://s2s.us2.mparticle.com/v2",
    "eu1": "https://s2s.eu1.mparticle.com/v2",
    "au1": "https://s2s.au1.mparticle.com/v2",
}
DEFAULT_POD = "us1"
BULK_PATH = "/bulkevents"  # under a pod's base URL
