"""`loader push --dry-run --out DIR` writes a fresh folder and never follows a symbolic link;
`loader report --out` overwrites a regular file only, and says so."""

from __future__ import annotations

import os
from pathlib import Path

from typer.testing import CliRunner

from loader.cli import app
from tests.integration.test_sql_session import warehouse  # noqa: F401  (the fixture)

runner = CliRunner()
WRITTEN = ["plan.json", "rejected.ndjson", "request-000001.json"]


def dry_run(warehouse: Path, out: Path, *args: str):  # noqa: F811
    env = {"BACKFILL_DUCKDB": str(warehouse), "BACKFILL_LEDGER": str(out.parent / "l.duckdb")}
    return runner.invoke(app, ["push", "--dry-run", "--out", str(out), *args], env=env)


def snapshot(folder: Path) -> dict[str, str]:
    return {p.name: p.read_text() for p in folder.iterdir()}


def test_a_new_folder_is_created_and_written(warehouse, tmp_path):  # noqa: F811
    out = tmp_path / "new" / "dry"
    result = dry_run(warehouse, out)
    assert result.exit_code == 0, result.output
    assert sorted(os.listdir(out)) == WRITTEN


def test_a_folder_that_is_a_symlink_is_refused(warehouse, tmp_path):  # noqa: F811
    target = tmp_path / "elsewhere"
    target.mkdir()
    (target / "request-000009.json").write_text("someone else's")
    link = tmp_path / "dry"
    link.symlink_to(target)
    for args in ((), ("--force",)):
        result = dry_run(warehouse, link, *args)
        assert result.exit_code == 2
        assert result.stdout == ""
        assert result.stderr == (
            f"error: --out {link} is a symbolic link: give the folder itself.\n"
        )
    assert snapshot(target) == {"request-000009.json": "someone else's"}


def test_a_folder_with_files_is_refused_without_force(warehouse, tmp_path):  # noqa: F811
    out = tmp_path / "dry"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    result = dry_run(warehouse, out)
    assert result.exit_code == 2
    assert result.stderr == (
        f"error: --out {out} is not empty: give a new or empty folder, or --force to replace "
        "the files of an earlier dry run there.\n"
    )
    assert snapshot(out) == {"notes.txt": "mine"}


def test_force_replaces_only_a_dry_runs_files(warehouse, tmp_path):  # noqa: F811
    out = tmp_path / "dry"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    (out / "request-000007.json").write_text("old")
    (out / "plan.json").write_text("old")
    result = dry_run(warehouse, out, "--force")
    assert result.exit_code == 0, result.output
    assert sorted(os.listdir(out)) == ["notes.txt", *WRITTEN]
    assert (out / "notes.txt").read_text() == "mine"
    assert (out / "plan.json").read_text() != "old"


def test_force_refuses_a_symlink_among_a_dry_runs_files(warehouse, tmp_path):  # noqa: F811
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    out = tmp_path / "dry"
    out.mkdir()
    (out / "request-000001.json").write_text("old")
    (out / "plan.json").symlink_to(victim)
    result = dry_run(warehouse, out, "--force")
    assert result.exit_code == 2
    assert result.stderr == (
        f"error: --out {out}: plan.json is not a regular file (a symbolic link, a folder); "
        "remove it yourself or give another folder.\n"
    )
    assert victim.read_text() == "keep me"
    assert (out / "request-000001.json").read_text() == "old"  # nothing removed


def test_force_refuses_a_folder_named_like_a_request(warehouse, tmp_path):  # noqa: F811
    out = tmp_path / "dry"
    (out / "request-000001.json").mkdir(parents=True)
    result = dry_run(warehouse, out, "--force")
    assert result.exit_code == 2
    assert result.stderr == (
        f"error: --out {out}: request-000001.json is not a regular file (a symbolic link, a "
        "folder); remove it yourself or give another folder.\n"
    )
    assert os.listdir(out) == ["request-000001.json"]


def report(warehouse: Path, out: Path):  # noqa: F811
    env = {"BACKFILL_DUCKDB": str(warehouse), "BACKFILL_LEDGER": str(out.parent / "l.duckdb")}
    return runner.invoke(app, ["report", "--out", str(out)], env=env)


def test_report_refuses_a_symlink_and_says_when_it_overwrites(warehouse, tmp_path):  # noqa: F811
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    link = tmp_path / "report.html"
    link.symlink_to(victim)
    refused = report(warehouse, link)
    assert refused.exit_code == 2
    assert refused.stdout == ""
    assert refused.stderr == (
        f"error: {link} is a symbolic link: not followed; give another --out.\n"
    )
    assert victim.read_text() == "keep me"

    out = tmp_path / "r.html"
    first = report(warehouse, out)
    assert first.exit_code == 0, first.output
    assert first.stdout.startswith(f"wrote {out}: 5 events to replay")
    again = report(warehouse, out)
    assert again.exit_code == 0, again.output
    assert again.stdout.startswith(f"overwrote {out}: 5 events to replay")
