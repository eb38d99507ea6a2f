"""The Events API's size and rate limits (shared by the loader and the emulator)."""

from __future__ import annotations

MAX_REQUEST_BYTES = 256 * 1024  # a request body, after any gzip decoding
MAX_BATCHES_PER_REQUEST = 100
MAX_BATCH_BYTES = 128 * 1024  # a batch as compact JSON
ACCOUNT_RATE_LIMIT = 270  # batches/s, mParticle's default account limit
MAX_EVENT_AGE_DAYS = 30  # /bulkevents is for data up to this many days old
