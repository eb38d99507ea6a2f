"""Amplitude's Batch Event Upload API, as the loader and the emulator both need it: hosts,
limits and the answers' bodies (docs/destinations/amplitude.md cites the sources)."""
