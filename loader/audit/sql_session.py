"""`loader sql`: one read-only DuckDB session over the warehouse, with the ledger attached.

The warehouse (the replay set and every dbt model) is the session's main database; the
send ledger, when its file exists, is attached read-only as `ledger`, so one query can
join what was meant to be sent with what was acknowledged:

    select r.replay_key, a.acknowledged_at
    from replay_events r left join ledger.acknowledged_events a using (replay_key)

The ledger's views (`event_states`, `failures`, ...) are there even for a ledger file
written before they existed (see `loader.push.ledger.attach_ledger`).

Variables given as NAME=VALUE are set with DuckDB's SET VARIABLE; queries read them with
getvariable('NAME') (the queries in analyses/ do).

Other DuckDB files (say the emulator's record) are attached read-only by name, before the
session is closed to everything else: once these files are attached, external access is
off and the configuration locked, so no statement reads or writes another file (COPY ... TO,
read_text, ATTACH), installs or loads an extension, or turns that back on.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import orjson

from loader.errors import LoaderError
from loader.push.ledger import attach_ledger
from loader.warehouse import attach, connect, lock_holder

VARIABLE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
NO_RESULT_TYPES = {
    "SET",
    "VARIABLE_SET",
    "ATTACH",
    "DETACH",
    "TRANSACTION",
    "LOAD",
    "CREATE",
    "DROP",
}


class SqlError(LoaderError):
    """A query failed; the message is DuckDB's, naming the statement."""

    exit_code = 1


RESERVED_NAMES = {"warehouse", "ledger", "memory", "system", "temp", "main"}
CONFINED = "(loader sql reads only the warehouse, the ledger and files given with --attach)"


class LedgerUnavailable(LoaderError):
    """The ledger file exists but cannot be attached (a running push holds it)."""

    def __init__(self, message: str, holder: str):
        super().__init__(message)
        self.holder = holder


@dataclass
class QueryResult:
    statement: str
    columns: list[str]
    types: list[str]
    rows: list[tuple[Any, ...]]
    total_rows: int

    def to_json(self) -> bytes:
        """The rows as a JSON array of objects; JSON columns embedded as JSON, not text."""
        json_columns = {i for i, kind in enumerate(self.types) if kind == "JSON"}

        def value(index: int, cell: Any) -> Any:
            if cell is None:
                return None
            if index in json_columns:
                return orjson.Fragment(cell)
            if isinstance(cell, int) and not -(2**63) <= cell < 2**64:
                return str(cell)  # beyond 64 bits: exact as text
            return cell

        records = [
            {
                name: value(i, cell)
                for i, (name, cell) in enumerate(zip(self.columns, row, strict=True))
            }
            for row in self.rows
        ]
        return orjson.dumps(records, default=str, option=orjson.OPT_INDENT_2)


def open_session(
    warehouse: Path,
    ledger: Path | None = None,
    variables: dict[str, object] | None = None,
    attachments: dict[str, Path] | None = None,
) -> duckdb.DuckDBPyConnection:
    """The warehouse, read-only, with `ledger` attached read-only when the file exists, and
    `attachments` (name: DuckDB file) read-only; then no other file can be reached."""
    for name, path in (attachments or {}).items():
        if not path.is_file():
            raise LoaderError(f"--attach {name}={path}: no such file.")
    con = connect(warehouse, read_only=True)
    try:
        if ledger is not None and ledger.exists():
            try:
                attach_ledger(con, ledger, "ledger")
            except duckdb.IOException as exc:
                if lock_holder(exc) is None:
                    raise
                ledger_holder = lock_holder(exc) or "another process"
                raise LedgerUnavailable(
                    f"The ledger {ledger} is in use by {ledger_holder}: a `loader push` "
                    "holds it while it runs. Wait for it to finish, or query the warehouse "
                    "alone with --no-ledger.",
                    ledger_holder,
                ) from None
        for name, path in (attachments or {}).items():
            try:
                attach(con, path, name)
            except duckdb.IOException as exc:
                holder = lock_holder(exc)
                if holder is None:
                    raise LoaderError(f"--attach {name}={path}: {exc}") from None
                raise LoaderError(
                    f"--attach {name}={path}: the file is in use by {holder}."
                ) from None
        confine(con)
        for name, value in (variables or {}).items():
            if not VARIABLE_NAME.match(name):
                raise LoaderError(f"Variable name {name!r}: use letters, digits and underscores.")
            con.execute(f"set variable {name} = ?", [value])
    except BaseException:
        con.close()
        raise
    return con


def confine(con: duckdb.DuckDBPyConnection) -> None:
    """No file but those attached, no extension, no network; and no way to turn them back on."""
    con.execute("set enable_external_access = false")
    con.execute("set lock_configuration = true")


def parse_attachments(pairs: list[str]) -> dict[str, Path]:
    """NAME=PATH pairs of --attach into a dict; names as DuckDB identifiers, not taken."""
    attachments = {}
    for pair in pairs:
        name, sep, path = pair.partition("=")
        name = name.strip()
        if not sep or not name or not path:
            raise LoaderError(
                f"--attach {pair!r}: expected NAME=PATH, e.g. emulator=emulator.duckdb."
            )
        if not VARIABLE_NAME.match(name):
            raise LoaderError(f"--attach {name}: use letters, digits and underscores for the name.")
        if name.lower() in RESERVED_NAMES or name in attachments:
            raise LoaderError(f"--attach {name}: the name is taken; choose another.")
        attachments[name] = Path(path)
    return attachments


def session_variables(con: duckdb.DuckDBPyConnection) -> dict[str, object]:
    """The variables set in the session (SET VARIABLE), to set again in the next one."""
    rows = con.execute("select name, value from duckdb_variables()").fetchall()
    return {name: value for name, value in rows if VARIABLE_NAME.match(name)}


def parse_variables(pairs: list[str]) -> dict[str, str]:
    """NAME=VALUE pairs into a dict (values stay text; cast them in SQL if needed)."""
    variables = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise LoaderError(f"--set {pair!r}: expected NAME=VALUE, e.g. user_key=mpid:123.")
        variables[name.strip()] = value
    return variables


def run(
    con: duckdb.DuckDBPyConnection, sql: str, *, max_rows: int | None = None
) -> Iterator[QueryResult]:
    """Run every statement of `sql` in order; yield the result of each that returns rows."""
    try:
        statements = con.extract_statements(sql)
    except duckdb.Error as exc:
        raise SqlError(str(exc)) from None
    for statement in statements:
        text = statement.query.strip()
        try:
            cursor = con.execute(statement)
            kind = statement.type.name
            if kind in NO_RESULT_TYPES or cursor.description is None:
                continue
            columns = [column[0] for column in cursor.description]
            types = [str(column[1]) for column in cursor.description]
            if max_rows is None:
                rows = cursor.fetchall()
                total = len(rows)
            else:
                rows = cursor.fetchmany(max_rows)
                total = len(rows) + sum(len(chunk) for chunk in _chunks(cursor))
        except duckdb.PermissionException as exc:
            raise SqlError(f"{_first_line(text)}: {exc} {CONFINED}") from None
        except duckdb.Error as exc:
            raise SqlError(f"{_first_line(text)}: {exc}") from None
        yield QueryResult(text, columns, types, rows, total)


def _chunks(cursor: duckdb.DuckDBPyConnection) -> Iterator[list[Any]]:
    while chunk := cursor.fetchmany(10_000):
        yield chunk


def _first_line(text: str) -> str:
    lines = [ln.strip() for ln in text.splitlines()]
    line = next((ln for ln in lines if ln and not ln.startswith("--")), text)
    return line if len(line) <= 80 else line[:77] + "..."


def read_query(query: str) -> str:
    """The SQL to run: the text of `query` when it names an existing .sql file, else itself."""
    path = Path(query)
    if query.endswith(".sql") or (len(query) < 300 and "\n" not in query and path.is_file()):
        try:
            return path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise LoaderError(f"{query}: no such file.") from None
    return query


def is_complete(buffer: str) -> bool:
    """True when `buffer` ends a statement (for the interactive prompt)."""
    return buffer.rstrip().endswith(";")


def ledger_attached(con: duckdb.DuckDBPyConnection) -> bool:
    """True when the session has the ledger attached as `ledger`."""
    row = con.execute(
        "select count(*) from duckdb_databases() where database_name = 'ledger'"
    ).fetchone()
    return bool(row and row[0])
