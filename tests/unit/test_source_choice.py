import sys
from datetime import date

import pytest

from loader.errors import LoaderError
from loader.ingest.source_choice import source_for
from loader.ingest.sources import LocalFiles, Sources, date_folder


def test_local_paths_alone_are_local_files_and_uris_pick_their_store(tmp_path):
    assert isinstance(source_for([str(tmp_path)]), LocalFiles)
    mixed = source_for(["s3://b/p/", "S3://b/q/", "gs://b/", "abfs://c/p", str(tmp_path)])
    assert isinstance(mixed, Sources)
    kinds = [getattr(s, "store", None) for s in mixed.sources]
    assert [k.scheme if k else "local" for k in kinds] == ["s3", "gs", "az", "local"]


@pytest.mark.parametrize("uri", ["ftp://host/q/", "http://example.test/q.txt", "s4://b/"])
def test_an_unknown_scheme_is_refused(uri):
    with pytest.raises(LoaderError, match="unknown scheme"):
        source_for([uri])


def test_a_missing_library_names_the_extra_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "adlfs", None)  # as if not installed
    source = source_for(["az://container/prefix/"])
    with pytest.raises(LoaderError, match=r"pip install 'mparticle-backfill\[azure\]'"):
        list(source.objects())


def test_the_innermost_date_folder_counts():
    assert date_folder("s3://b/mparticle/2026-11-20/App_1.txt") == date(2026, 11, 20)
    assert date_folder("/q/2025-01-01/x/2026-02-03/App.txt") == date(2026, 2, 3)
    assert date_folder("/q/2026-13-45/App.txt") is None
    assert date_folder("/q/App_2026-11-20.txt") is None


def test_since_keeps_date_folders_on_or_after_it_and_files_outside_them(tmp_path):
    for name in ["2026-11-19/a.txt", "2026-11-20/b.txt", "2026-11-21/c.txt", "d.txt"]:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("{}\n")
    source = source_for([str(tmp_path)], since=date(2026, 11, 20))
    names = sorted(obj.name for obj in source.objects())
    assert names == ["b.txt", "c.txt", "d.txt"]
