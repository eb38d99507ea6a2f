"""Reading the warehouse for the report: whether a table exists, and query rows."""

from __future__ import annotations

from typing import Any

import duckdb


def exists(con: duckdb.DuckDBPyConnection, table: str, catalog: str | None = None) -> bool:
    sql = "select count(*) from duckdb_tables() where table_name = ?"
    params: list[Any] = [table]
    if catalog:
        sql += " and database_name = ?"
        params.append(catalog)
    views = "select count(*) from duckdb_views() where view_name = ?"
    [(found,)] = con.execute(sql, params).fetchall()
    [(views_found,)] = con.execute(views, [table]).fetchall()
    return bool(found or views_found)


def attached(con: duckdb.DuckDBPyConnection, name: str) -> bool:
    sql = "select count(*) from duckdb_databases() where database_name = ?"
    [(found,)] = con.execute(sql, [name]).fetchall()
    return bool(found)


def query(
    con: duckdb.DuckDBPyConnection, sql: str, params: list[Any] | None = None
) -> list[tuple[Any, ...]]:
    return con.execute(sql, params or []).fetchall()
