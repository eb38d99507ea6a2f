"""`loader new-fix NAME --rows PREDICATE`: a unit test whose `given` holds real rows.

Up to `limit` rows of `int_events__classified` matching the predicate, and one that does
not (the fix must leave it unchanged), with the columns the fix is likely to read: the
predicate's columns, the event's name and types, its attributes and skip reason (or the
columns asked for), plus `replay_key`. Values are pseudonymized (fixture_values). The
`expect` is left for `loader fix-test NAME --accept`, which records the fix's output.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError

from loader.errors import LoaderError
from loader.fixes.chain import CHAIN_START
from loader.fixes.fixture_values import Pseudonyms, fixture_value, yaml_row, yaml_scalar
from loader.warehouse import connect

DEFAULT_COLUMNS = (
    "event_type",
    "event_name",
    "custom_event_type",
    "custom_attributes",
    "skip_reason",
)


class RowsError(LoaderError):
    """The rows for a unit test cannot be read (no warehouse, a bad predicate)."""


@dataclass(frozen=True)
class RealRows:
    predicate: str
    columns: list[str]
    matching: list[dict[str, Any]]  # pseudonymized, as the YAML holds them
    unchanged: dict[str, Any] | None  # a row the predicate does not match


def predicate_columns(predicate: str, known: list[str]) -> list[str]:
    """The chain columns a SQL predicate names, in the chain's order."""
    try:
        parsed = sqlglot.parse_one(predicate, read="duckdb")
    except SqlglotError as exc:
        raise RowsError(f"--rows is not a SQL predicate (DuckDB dialect): {exc}") from None
    named = {column.name for column in parsed.find_all(exp.Column)}
    unknown = sorted(named - set(known))
    if unknown:
        raise RowsError(
            f"--rows names {', '.join(unknown)}, not a column of {CHAIN_START} "
            f"(its columns: {', '.join(known)})."
        )
    return [c for c in known if c in named]


def read_real_rows(
    warehouse: Path, predicate: str, *, limit: int = 3, columns: list[str] | None = None
) -> RealRows:
    """Rows matching `predicate` and one that does not, pseudonymized."""
    if not warehouse.exists():
        raise RowsError(
            f"{warehouse.absolute()} not found: ingest and `dbt build` first (--rows reads it)."
        )
    con = connect(warehouse, read_only=True)
    with con:
        try:
            known = [row[0] for row in con.execute(f"describe {CHAIN_START}").fetchall()]
        except duckdb.CatalogException:
            raise RowsError(
                f"{warehouse.absolute()} has no {CHAIN_START}: run `dbt build` first."
            ) from None
        wanted = predicate_columns(predicate, known)
        asked = columns if columns is not None else list(DEFAULT_COLUMNS)
        bad = [c for c in asked if c not in known]
        if bad:
            raise RowsError(f"--columns: {', '.join(bad)} not a column of {CHAIN_START}.")
        chosen = ["replay_key", *[c for c in known if c != "replay_key" and c in {*asked, *wanted}]]
        select = ", ".join(f'"{c}"' for c in chosen)
        try:
            matching = con.execute(
                f"select {select} from {CHAIN_START} where ({predicate}) "
                "order by replay_key limit ?",
                [limit],
            ).fetchall()
            other = con.execute(
                f"select {select} from {CHAIN_START} where not coalesce(({predicate}), false) "
                "order by replay_key limit 1"
            ).fetchall()
        except duckdb.Error as exc:
            raise RowsError(f"--rows {predicate!r} does not run on {CHAIN_START}: {exc}") from None
    if not matching:
        raise RowsError(f"no row of {CHAIN_START} matches --rows {predicate!r}.")
    names = Pseudonyms()

    def as_fixture(row: tuple[Any, ...]) -> dict[str, Any]:
        return {c: fixture_value(c, v, names) for c, v in zip(chosen, row, strict=True)}

    return RealRows(
        predicate,
        chosen,
        [as_fixture(row) for row in matching],
        as_fixture(other[0]) if other else None,
    )


def test_entry(model: str, rows: RealRows) -> str:
    """The unit-test item (two-space item indent) whose given rows are `rows`."""
    given = [*rows.matching, *([rows.unchanged] if rows.unchanged else [])]
    where = rows.predicate.replace("\n", " ")
    description = f"{len(rows.matching)} real row(s) matching `{where}` (pseudonymized)"
    if rows.unchanged:
        description += ", and one the fix must leave unchanged (the last)"
    lines = [
        f"  - name: test_{model}",
        f"    model: {model}",
        f"    description: {yaml_scalar(description + '.')}",
        "    given:",
        f"      - input: ref('{CHAIN_START}')",
        "        rows:",
        *(f"          - {yaml_row(row)}" for row in given),
        "    expect:",
        "      rows:",
        f"        # TODO: write the fix, then `loader fix-test {model} --accept` records its",
        "        # output on the given rows here (shown as a diff first).",
        *(f"        - {yaml_row(row)}" for row in given),
    ]
    return "\n".join(lines) + "\n"
