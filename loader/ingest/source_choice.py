"""Which sources `loader ingest ARGUMENTS` reads: local paths, and object store URIs."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date

from loader.errors import LoaderError
from loader.ingest.object_stores import ObjectStore
from loader.ingest.sources import LocalFiles, Source, Sources
from loader.object_storage import store_for


def source_for(arguments: Iterable[str], since: date | None = None) -> Source:
    """The source that `loader ingest ARGUMENTS` reads: local paths, and `s3://`, `gs://`
    and `az://` URIs (see `object_stores`), in the order given."""
    arguments = list(arguments)
    if since is None and not any("://" in argument for argument in arguments):
        return LocalFiles(arguments)
    sources: list[Source] = []
    for argument in arguments:
        scheme = argument.split("://", 1)[0].lower() if "://" in argument else ""
        store = store_for(scheme) if scheme else None
        if scheme and store is None:
            raise LoaderError(
                f"{argument}: unknown scheme {scheme}://. loader ingest reads local paths, "
                "s3://, gs:// (gcs://) and az:// (abfs://) URIs."
            )
        if store is None:
            sources.append(LocalFiles([argument]))
        elif sources and isinstance(sources[-1], ObjectStore) and sources[-1].store == store:
            sources[-1].arguments.append(argument)
        else:
            sources.append(ObjectStore(store, [argument], since))
    return Sources(sources, since)
