"""`loader ingest` from S3, GCS and Azure Blob, against real local servers.

Each store is reached through a proxy (tests/object_store_servers.py) that counts
downloads and can drop connections or change an object while it is read.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pytest
from typer.testing import CliRunner

from loader.cli import app
from loader.ingest.samples import generate
from tests.object_store_servers import (
    FaultProxy,
    azurite_command,
    azurite_connection_string,
    free_port,
    no_cloud_metadata,
    start_azurite,
    start_moto,
)

runner = CliRunner()
NOW_MS = int(datetime(2026, 11, 23, tzinfo=UTC).timestamp() * 1000)  # folders 11-20..22
BUCKET = "acme-quarantine"


def ingest(*arguments: str):
    return runner.invoke(app, ["ingest", *arguments])


class Store:
    """One object store under test: how to name, write and reach its objects."""

    scheme = ""

    def __init__(self, proxy: FaultProxy, fs: Any) -> None:
        self.proxy, self.fs = proxy, fs  # fs writes directly, not through the proxy

    def uri(self, key: str = "") -> str:
        return f"{self.scheme}://{BUCKET}/{key}"

    def put(self, key: str, data: bytes) -> None:
        self.fs.pipe_file(f"{BUCKET}/{key}", data)

    def upload(self, folder: Path, prefix: str) -> None:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                self.put(f"{prefix}{path.relative_to(folder).as_posix()}", path.read_bytes())

    def downloads(self) -> int:
        return sum(self.proxy.downloads.values())


@pytest.fixture
def s3(monkeypatch, tmp_path) -> Iterator[Store]:
    server, port = start_moto(monkeypatch, tmp_path)
    proxy = FaultProxy(f"127.0.0.1:{port}")
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", f"http://{proxy.endpoint}")
    import s3fs

    fs = s3fs.S3FileSystem(
        endpoint_url=f"http://127.0.0.1:{port}", skip_instance_cache=True, use_listings_cache=False
    )
    fs.mkdir(BUCKET)
    store = Store(proxy, fs)
    store.scheme = "s3"
    yield store
    proxy.stop()
    server.stop()


@pytest.fixture
def gcs(monkeypatch) -> Iterator[Store]:
    from gcp_storage_emulator.server import create_server

    no_cloud_metadata(monkeypatch)
    monkeypatch.setenv("GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT", "false")
    port = free_port()
    server = create_server("127.0.0.1", port, in_memory=True, default_bucket=BUCKET)
    server.start()
    proxy = FaultProxy(f"127.0.0.1:{port}")
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", f"http://127.0.0.1:{port}")
    import gcsfs

    fs = gcsfs.GCSFileSystem(token="anon", skip_instance_cache=True, use_listings_cache=False)
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", f"http://{proxy.endpoint}")
    store = Store(proxy, fs)
    store.scheme = "gs"
    yield store
    proxy.stop()
    server.stop()


# CI installs Azurite (`make azurite` in .ci/run) and sets REQUIRE_AZURITE=1, so the Azure
# tests never skip there.
def require_azurite() -> None:
    if azurite_command() is None:
        if os.environ.get("REQUIRE_AZURITE") == "1":
            pytest.fail("REQUIRE_AZURITE=1 but Azurite is not installed: make azurite")
        pytest.skip("Azurite (npm package azurite) is not installed: make azurite")


@pytest.fixture
def azure(monkeypatch, tmp_path) -> Iterator[Store]:
    require_azurite()
    no_cloud_metadata(monkeypatch)
    process, port = start_azurite(tmp_path / "azurite")
    proxy = FaultProxy(f"127.0.0.1:{port}")
    import adlfs

    fs = adlfs.AzureBlobFileSystem(
        connection_string=azurite_connection_string(f"127.0.0.1:{port}"),
        skip_instance_cache=True,
        use_listings_cache=False,
    )
    fs.mkdir(BUCKET)
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", azurite_connection_string(proxy.endpoint))
    store = Store(proxy, fs)
    store.scheme = "az"
    yield store
    proxy.stop()
    process.kill()  # its data folder is thrown away: no need to wait for a clean stop
    process.wait()


@pytest.fixture(params=["s3", "gcs", "azure"])
def store(request) -> Store:
    return request.getfixturevalue(request.param)


@pytest.fixture
def delivery(tmp_path) -> Path:
    """A Quarantine Output folder: date folders, gzip under .txt, verification files, a
    redelivered batch and a bad line."""
    folder = tmp_path / "delivery"
    generate(folder, 600, seed=3, days=3, now_ms=NOW_MS, events_per_file=80)
    plain = next(
        p for p in sorted(folder.rglob("ShopApp_*.txt")) if p.read_bytes()[:2] != b"\x1f\x8b"
    )
    plain.write_bytes(plain.read_bytes() + b"not json\n")
    return folder


RAW = {
    "quarantine_lines": "select source_file, line_number, batch_json::varchar, file_checksum "
    "from raw.quarantine_lines",
    "rejected_lines": "select source_file, line_number, reason from raw.rejected_lines",
    "ingested_files": "select source_file, size_bytes, is_gzip, lines_loaded, lines_rejected "
    "from raw.ingested_files",
}


def raw_tables(warehouse: Path, root: str) -> dict[str, list[tuple]]:
    """The raw tables with `root` cut off the file names (checksums left out)."""
    tables = {}
    with duckdb.connect(str(warehouse), read_only=True) as con:
        for table, sql in RAW.items():
            rows = con.execute(sql).fetchall()
            rows = [(r[0].removeprefix(root), *r[1:3]) for r in rows]
            tables[table] = sorted(rows)
    return tables


def use_warehouse(monkeypatch, path: Path) -> Path:
    monkeypatch.setenv("BACKFILL_DUCKDB", str(path))
    monkeypatch.setenv("BACKFILL_LEDGER", str(path.with_suffix(".ledger.duckdb")))
    return path


def test_a_prefix_loads_as_the_same_files_from_disk(store, delivery, tmp_path, monkeypatch):
    store.upload(delivery, "mparticle/")
    use_warehouse(monkeypatch, tmp_path / "disk.duckdb")
    from_disk = ingest(str(delivery))
    assert from_disk.exit_code == 1, from_disk.output  # the bad line
    use_warehouse(monkeypatch, tmp_path / "store.duckdb")

    result = ingest(store.uri("mparticle/"))

    assert result.exit_code == 1, result.output
    assert "skipped 2 (verification files)" in result.output
    assert "rejected 1" in result.output
    assert store.uri("mparticle/2026-11-20/") in result.output
    disk = raw_tables(tmp_path / "disk.duckdb", str(delivery) + "/")
    remote = raw_tables(tmp_path / "store.duckdb", store.uri("mparticle/"))
    assert remote == disk
    assert len(disk["quarantine_lines"]) > 10
    assert any(row[2] for row in disk["ingested_files"])  # some gzipped under .txt


def test_a_second_ingest_downloads_nothing_and_a_changed_object_replaces(
    store, delivery, warehouse
):
    store.upload(delivery, "mparticle/")
    assert ingest(store.uri("mparticle/")).exit_code == 1
    downloads = store.downloads()
    assert downloads > 0

    again = ingest(store.uri("mparticle/"))

    assert "nothing downloaded" in again.output, again.output
    assert store.downloads() == downloads
    assert "   loaded  " not in again.output
    as_json = json.loads(ingest(store.uri("mparticle/"), "--json").output)
    assert (as_json["objects_downloaded"], as_json["bytes_downloaded"]) == (0, 0)
    assert as_json["files_unchanged"] > 5

    key = "mparticle/2026-11-21/ShopApp_new_content.txt"
    store.put(key, b'{"batch_id": "1", "events": []}\n')
    changed = sorted(delivery.rglob("ShopApp_*.txt"))[-1].relative_to(delivery).as_posix()
    store.put(f"mparticle/{changed}", b'{"batch_id": "2", "events": []}\n')
    third = ingest(store.uri("mparticle/"))
    assert "downloaded 2 objects" in third.output, third.output
    with duckdb.connect(str(warehouse), read_only=True) as con:
        rows = con.execute(
            "select batch_json->>'batch_id' from raw.quarantine_lines where source_file = ?",
            [store.uri(f"mparticle/{changed}")],
        ).fetchall()
        statuses = con.execute("select count(*) from raw.ingested_files").fetchall()
    assert rows == [("2",)]
    assert statuses[0][0] >= 2
    assert f"replaced  {store.uri(f'mparticle/{changed}')}" in third.output


def test_globs_since_and_mixed_arguments(store, delivery, tmp_path, warehouse):
    store.upload(delivery, "mparticle/")
    local = tmp_path / "local"
    generate(local, 100, seed=9, days=2, now_ms=NOW_MS, events_per_file=50)

    result = ingest(store.uri("mparticle/2026-11-2[12]/"), str(local), "--since", "2026-11-22")

    assert result.exit_code == 0, result.output
    with duckdb.connect(str(warehouse), read_only=True) as con:
        files = [f for (f,) in con.execute("select source_file from raw.ingested_files").fetchall()]
    assert files and all("/2026-11-22/" in f for f in files), files
    assert any(f.startswith(store.uri()) for f in files)
    assert any(f.startswith(str(local)) for f in files)


def test_a_dropped_connection_is_retried_and_an_unreadable_object_reported(
    store, delivery, warehouse
):
    store.upload(delivery, "mparticle/")
    names = sorted(p.name for p in delivery.rglob("ShopApp_*.txt"))
    store.proxy.break_once.add(names[0])
    store.proxy.break_always.add(names[1])

    result = ingest(store.uri("mparticle/"))

    assert result.exit_code == 1, result.output
    assert f"not read  {store.uri()}" in result.output
    assert names[1] in result.output and "after retries" in result.output
    with duckdb.connect(str(warehouse), read_only=True) as con:
        files = con.execute("select source_file from raw.ingested_files").fetchall()
        loaded = {f.rsplit("/", 1)[-1] for (f,) in files}
        stray = con.execute(
            "select count(*) from raw.quarantine_lines where source_file like ?", [f"%{names[1]}"]
        ).fetchall()
    assert names[0] in loaded and names[1] not in loaded and len(loaded) == len(names) - 1
    assert stray == [(0,)]
    assert ingest(store.uri("mparticle/")).exit_code == 1  # still not read: tried again


def test_an_object_changed_while_read_is_not_loaded(store, delivery, warehouse):
    store.upload(delivery, "mparticle/")
    name = sorted(delivery.rglob("ShopApp_*.txt"))[0]
    key = f"mparticle/{name.relative_to(delivery).as_posix()}"
    same_size = b'{"batch_id": "9"}'.ljust(name.stat().st_size - 1) + b"\n"  # only the end tells
    store.proxy.on_download[name.name] = lambda: store.put(key, same_size)

    result = ingest(store.uri("mparticle/"))

    assert result.exit_code == 1, result.output
    assert "changed while it was read" in result.output
    with duckdb.connect(str(warehouse), read_only=True) as con:
        [(n,)] = con.execute(
            "select count(*) from raw.ingested_files where source_file = ?", [store.uri(key)]
        ).fetchall()
    assert n == 0
    store.proxy.on_download.clear()
    again = ingest(store.uri("mparticle/"))
    assert f"loaded  {store.uri(key)}" in again.output, again.output


def test_a_missing_bucket_or_prefix_or_scheme_is_refused_before_loading(store, delivery, warehouse):
    store.upload(delivery, "mparticle/")
    cases = [
        (f"{store.scheme}://no-such-bucket-x/q/", "does not exist"),
        (store.uri("nothing-here/"), "no object under this prefix"),
        ("ftp://host/q/", "unknown scheme ftp://"),
    ]
    for uri, message in cases:
        result = ingest(store.uri("mparticle/"), uri)
        assert result.exit_code == 2, result.output
        assert uri in result.output and message in result.output, result.output
    with duckdb.connect(str(warehouse)) as con:
        tables = con.execute(
            "select count(*) from information_schema.tables where table_name = 'ingested_files'"
        ).fetchall()
        if tables[0][0]:
            assert con.execute("select count(*) from raw.ingested_files").fetchall() == [(0,)]


def test_s3_without_credentials_says_what_to_check(s3, delivery, warehouse, monkeypatch):
    s3.upload(delivery, "mparticle/")
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")

    result = ingest(s3.uri("mparticle/"))

    assert result.exit_code == 2, result.output
    assert s3.uri("mparticle/") in result.output
    assert "AWS_PROFILE" in result.output


def test_azure_with_a_wrong_key_says_access_is_denied(azure, delivery, warehouse, monkeypatch):
    azure.upload(delivery, "mparticle/")
    wrong = azurite_connection_string(azure.proxy.endpoint, key="d3Jvbmc=" * 11)
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", wrong)

    result = ingest(azure.uri("mparticle/"))

    assert result.exit_code == 2, result.output
    assert azure.uri("mparticle/") in result.output
    assert "AZURE_STORAGE_CONNECTION_STRING" in result.output


def test_an_object_read_twice_counts_once(store, delivery, warehouse):
    # the file with the bad line is read twice (fast path, then line by line)
    store.upload(delivery, "mparticle/")
    result = ingest(store.uri("mparticle/"), "--json")
    as_json = json.loads(result.stdout)  # the GCS stand-in may print a broken pipe on stderr
    assert as_json["lines_rejected"] == 1
    assert as_json["objects_downloaded"] == as_json["files_read"] == 9
