"""Replay blocked mParticle data from Quarantine Output."""

__version__ = "0.1.0"
