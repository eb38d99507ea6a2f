"""Object storage (S3, Google Cloud Storage, Azure Blob) through fsspec: s3fs, gcsfs and
adlfs (the `s3`, `gcs`, `azure` extras), with each cloud's own credential chain and
endpoint settings. Ingest lists and downloads quarantine objects through it; a push reads
a Parquet replay set through it.
"""

from __future__ import annotations

import importlib
import logging
import os
from dataclasses import dataclass
from typing import Any

from loader.errors import LoaderError

# Waits before ingest tries a block again, on top of the library's own retries (s3fs, gcsfs
# and the Azure SDK each retry a dropped connection a few times with backoff already).
RETRY_DELAYS_S = (0.5, 2.0)


@dataclass(frozen=True)
class Store:
    """One kind of object storage: its URI scheme as recorded, fsspec protocol, extra."""

    scheme: str
    protocol: str
    module: str
    extra: str
    check: str  # what to check when access fails
    retry_delays: tuple[Any, ...] = RETRY_DELAYS_S  # ours, on top of the library's


STORES = {
    "s3": Store(
        "s3",
        "s3",
        "s3fs",
        "s3",
        "AWS credentials (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE, ~/.aws, "
        "the instance role), AWS_ENDPOINT_URL_S3 for an S3-compatible store, and that "
        "they may list and read the bucket",
    ),
    "gs": Store(
        "gs",
        "gcs",
        "gcsfs",
        "gcs",
        "application-default credentials (`gcloud auth application-default login` or "
        "GOOGLE_APPLICATION_CREDENTIALS) and that they may list and read the bucket",
        retry_delays=(),  # gcsfs tries 6 times over half a minute already
    ),
    "az": Store(
        "az",
        "abfs",
        "adlfs",
        "azure",
        "AZURE_STORAGE_CONNECTION_STRING, or AZURE_STORAGE_ACCOUNT_NAME (or the account in "
        "the URI) with a DefaultAzureCredential login, and that it may list and read "
        "the container",
    ),
}
ALIASES = {"gcs": "gs", "abfs": "az", "abfss": "az"}


def store_for(scheme: str) -> Store | None:
    """The store of a URI scheme (`s3`, `gs`/`gcs`, `az`/`abfs`), or None."""
    return STORES.get(ALIASES.get(scheme, scheme))


def store_of_uri(text: str) -> Store | None:
    """The store of `text` when it is an object-storage URI (s3://, gs://, az://...)."""
    scheme, sep, _ = text.partition("://")
    return store_for(scheme) if sep else None


def filesystem(store: Store, uri: str) -> tuple[Any, str]:
    """An fsspec filesystem for `uri` and the path in it (the bucket and key)."""
    if store.module == "gcsfs":  # its experimental gRPC bucket-layout lookup is not needed
        os.environ.setdefault("GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT", "false")
        # it logs a traceback for each failed request; ingest reports the object instead
        logging.getLogger("gcsfs").setLevel(logging.CRITICAL)
    try:
        importlib.import_module(store.module)
    except ImportError:
        raise LoaderError(
            f"{uri}: reading {store.scheme}:// needs the {store.module} library: "
            f"pip install 'mparticle-backfill[{store.extra}]'"
        ) from None
    import fsspec.core

    options: dict[str, Any] = {}
    if store.module == "gcsfs" and os.environ.get("STORAGE_EMULATOR_HOST"):
        options["token"] = "anon"  # as google-cloud-storage does: emulators take no credentials
    fsspec_uri = f"{store.protocol}://{uri.split('://', 1)[1]}"
    # no listing cache: the check after a download must ask the store again
    filesystem, path = fsspec.core.url_to_fs(
        fsspec_uri, skip_instance_cache=True, use_listings_cache=False, **options
    )
    return filesystem, str(path)
