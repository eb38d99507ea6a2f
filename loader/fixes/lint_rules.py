"""The rules `loader lint` holds each compiled fix to, checked with sqlglot (DuckDB dialect).

A fix is exactly one SELECT, reads only ref()s (its chain input first), references only
known columns, keeps every chain column, and passes the chain's kept columns (the replay
key, user key and timestamp; a context fix's batch key and identity inputs) through
unchanged. Positions in the compiled SQL are mapped back to the fix's source file; a
problem inside a macro's output points at the macro call.
"""

from __future__ import annotations

import bisect
import difflib
import re
from dataclasses import dataclass, field
from typing import Any

import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError, SqlglotError, TokenError
from sqlglot.optimizer.qualify import qualify
from sqlglot.optimizer.scope import Scope, build_scope, traverse_scope
from sqlglot.schema import MappingSchema
from sqlglot.tokenizer_core import Token

from loader.fixes.chain import CHAIN_START, EVENT_CHAIN, KEPT_AS_IS

JINJA_TAG = re.compile(r"\{\{.*?\}\}|\{%.*?%\}|\{#.*?#\}", re.DOTALL)
# Statements that change or define something, or reach outside the query.
NOT_A_QUERY = tuple(
    getattr(exp, name)
    for name in (
        "Create", "Insert", "Update", "Delete", "Drop", "Alter", "Merge", "Copy", "Command",
        "Set", "Pragma", "Use", "Transaction", "Commit", "Rollback", "Attach", "Detach",
        "TruncateTable", "Grant", "Revoke", "Install", "Load", "Export", "Refresh",
    )
    if hasattr(exp, name)
)  # fmt: skip


@dataclass(frozen=True, order=True)
class Problem:
    path: str
    line: int
    col: int
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}:{self.col}: {self.message}"


@dataclass
class CompiledFix:
    """A fix as dbt compiled it, with what the lint needs to know about its refs."""

    name: str
    path: str
    source: str
    compiled: str
    input_relation: str
    refs: dict[str, str] = field(default_factory=dict)  # relation name -> model name
    sources: set[str] = field(default_factory=set)  # relation names of dbt sources
    kept: tuple[str, ...] = KEPT_AS_IS  # columns that must pass through unchanged
    kept_why: str = EVENT_CHAIN.kept_why
    chain_start: str = CHAIN_START


# -- mapping compiled positions back to the source file ------------------------------


class SourceMap:
    """Maps offsets in compiled SQL to line:col in the source it was rendered from."""

    def __init__(self, source: str, compiled: str):
        self.source = source
        matcher = difflib.SequenceMatcher(None, source, compiled, autojunk=False)
        self.opcodes = matcher.get_opcodes()
        self.starts = [j1 for _, _, _, j1, _ in self.opcodes]
        self.tags = [(m.start(), m.end()) for m in JINJA_TAG.finditer(source)]
        self.line_starts = [0] + [m.end() for m in re.finditer("\n", source)]

    def source_offset(self, compiled_offset: int) -> int:
        index = max(0, bisect.bisect_right(self.starts, compiled_offset) - 1)
        tag, i1, _, j1, _ = self.opcodes[index]
        offset = i1 + (compiled_offset - j1) if tag == "equal" else i1
        for start, end in self.tags:  # inside a macro call: point at the call
            if start <= offset < end:
                return start
        return min(offset, max(len(self.source) - 1, 0))

    def position(self, compiled_offset: int) -> tuple[int, int]:
        offset = self.source_offset(compiled_offset)
        line = bisect.bisect_right(self.line_starts, offset)
        return line, offset - self.line_starts[line - 1] + 1


def node_offset(node: exp.Expr) -> int | None:
    """Offset in the parsed SQL of the node's first token that sqlglot located."""
    best = None
    for child in node.walk():
        start = child.meta.get("start") if child.meta else None
        if start is not None and (best is None or start < best):
            best = start
    return best


def function_name(node: exp.Expr) -> str:
    if isinstance(node, exp.Anonymous):
        return node.name
    return node.sql_name() if isinstance(node, exp.Func) else node.sql(dialect="duckdb")


# -- the checks ---------------------------------------------------------------------


class FixLinter:
    """The checks of one compiled fix; `run()` returns its problems."""

    def __init__(self, fix: CompiledFix, schemas: dict[str, list[str]], chain_columns: list[str]):
        self.fix = fix
        self.schemas = schemas  # relation name -> columns
        self.chain_columns = chain_columns
        self.map = SourceMap(fix.source, fix.compiled)
        self.problems: list[Problem] = []
        self.tokens: list[Token] = []

    def report(self, compiled_offset: int | None, message: str) -> None:
        line, col = self.map.position(compiled_offset) if compiled_offset is not None else (1, 1)
        self.problems.append(Problem(self.fix.path, line, col, message))

    def report_at(self, node: exp.Expr | None, message: str, fallback: int | None = None) -> None:
        offset = node_offset(node) if node is not None else None
        self.report(offset if offset is not None else fallback, message)

    def run(self) -> list[Problem]:
        sql = self.fix.compiled
        try:
            self.tokens = sqlglot.tokenize(sql, read="duckdb")
            statements = sqlglot.parse(sql, read="duckdb")
        except (ParseError, TokenError) as exc:
            self.report_parse_error(exc)
            return self.problems
        query = self.check_statements(statements)
        if query is None:
            return self.problems
        reads_input = self.check_reads(query)
        qualified = self.check_columns(query)
        if qualified is not None:
            self.check_output(qualified)
            if reads_input:
                self.check_kept_as_is(qualified)
        return self.problems

    def report_parse_error(self, exc: SqlglotError) -> None:
        errors = getattr(exc, "errors", None) or [{}]
        first = errors[0]
        line, col = first.get("line"), first.get("col")
        offset = None
        if line and col:
            starts = [0] + [m.end() for m in re.finditer("\n", self.fix.compiled)]
            offset = starts[min(line, len(starts)) - 1] + max(col - 1, 0)
        detail = first.get("description") or str(exc).splitlines()[0]
        self.report(offset, f"cannot parse the compiled SQL (DuckDB dialect): {detail}")

    def token_text(self, offset: int | None) -> str | None:
        return next((t.text for t in self.tokens if t.start == offset), None)

    def statement_starts(self) -> list[int]:
        """Offset of each statement's first token."""
        starts, expect_start = [], True
        for token in self.tokens:
            if token.token_type == sqlglot.TokenType.SEMICOLON:
                expect_start = True
            elif expect_start:
                starts.append(token.start)
                expect_start = False
        return starts

    def check_statements(self, statements: list[Any]) -> exp.Query | None:
        starts = self.statement_starts()
        parsed = [s for s in statements if s is not None]
        if not parsed:
            self.report(None, "a fix is exactly one SELECT; this one is empty")
            return None
        semicolons = [t for t in self.tokens if t.token_type == sqlglot.TokenType.SEMICOLON]
        if len(parsed) > 1:
            self.report(
                starts[1] if len(starts) > 1 else None,
                f"a fix is exactly one SELECT; found {len(parsed)} statements",
            )
        elif semicolons:
            self.report(semicolons[-1].start, "remove the ';': dbt wraps the fix's SELECT itself")
        query = None
        for index, statement in enumerate(parsed):
            start = starts[index] if index < len(starts) else None
            if not isinstance(statement, exp.Query):
                kind = statement.key.upper()
                self.report(start, f"no DDL or DML in a fix ({kind}); a fix is one SELECT")
                continue
            bad = next((n for n in statement.walk() if isinstance(n, NOT_A_QUERY)), None)
            if bad is not None:
                self.report_at(bad, f"no DDL or DML in a fix ({bad.key.upper()})", start)
                continue
            query = query or statement
        return query if len(parsed) == 1 else None

    def relation_key(self, table: exp.Table) -> str:
        parts = [table.catalog, table.db, table.name]
        return ".".join(p.lower() for p in parts if p)

    def check_reads(self, query: exp.Query) -> bool:
        """Reports reads of anything but ref()s; True when the fix reads its chain input."""
        cte_names = {cte.alias_or_name.lower() for cte in query.find_all(exp.CTE)}
        read_input = False
        for table in query.find_all(exp.Table):
            if isinstance(table.this, exp.Func) or not isinstance(table.this, exp.Identifier):
                name = self.token_text(node_offset(table)) or function_name(table.this)
                self.report_at(
                    table,
                    f"reads {name.lower()}(): a fix reads only ref()s "
                    "(its input is {{ fix_input() }})",
                )
                continue
            key = self.relation_key(table)
            if not table.db and key in cte_names:
                continue
            if key == self.fix.input_relation:
                read_input = True
            elif key in self.fix.sources:
                self.report_at(table, f"reads source {table.name}: a fix reads only ref()s")
            elif key in self.fix.refs and not self.schemas.get(key):
                self.report_at(
                    table,
                    f"cannot check the columns of ref('{self.fix.refs[key]}'): "
                    "document them in its YAML",
                )
            elif key not in self.fix.refs:
                what = "a file or URL" if re.search(r"[./\\:]", table.name) else "not a ref()"
                self.report_at(table, f"reads '{table.name}' ({what}): a fix reads only ref()s")
        if not read_input:
            self.report(
                None,
                "does not read its place in the chain: select from {{ fix_input() }} "
                f"(here ref('{self.fix.input_relation.rsplit('.', 1)[-1]}'))",
            )
        return read_input

    def check_columns(self, query: exp.Query) -> exp.Query | None:
        schema: dict[str, Any] = {}
        for relation, columns in self.schemas.items():
            if not columns or relation.count(".") != 2:
                continue
            catalog, db, name = relation.split(".")
            schema.setdefault(catalog, {}).setdefault(db, {})[name] = dict.fromkeys(
                columns, "UNKNOWN"
            )
        try:
            qualified = qualify(
                query.copy(),
                schema=MappingSchema(schema, dialect="duckdb"),
                dialect="duckdb",
                allow_partial_qualification=True,
                validate_qualify_columns=False,
                quote_identifiers=False,
            )
        except SqlglotError as exc:
            self.report(None, f"cannot resolve the columns: {exc}")
            return None
        for scope in traverse_scope(qualified):
            if not isinstance(scope.expression, exp.Select):
                continue
            for column in scope.unqualified_columns:
                self.report_at(column, f"unknown column {column.name}")
            for column in scope.columns:
                if not column.table or column in scope.unqualified_columns:
                    continue
                source = scope.sources.get(column.table)
                known = self.source_columns(source)
                if source is None and not scope.is_correlated_subquery:
                    self.report_at(column, f"unknown column {column.table}.{column.name}")
                elif known is not None and column.name not in known:
                    self.report_at(column, f"unknown column {column.table}.{column.name}")
        return qualified

    def source_columns(self, source: object) -> set[str] | None:
        if isinstance(source, exp.Table):
            return set(self.schemas.get(self.relation_key(source), [])) or None
        if isinstance(source, Scope) and isinstance(source.expression, exp.Query):
            names = source.expression.named_selects
            return None if "*" in names else set(names)
        return None

    def final_select_offset(self) -> int | None:
        """The outermost query's last SELECT (the final `select * from ...`)."""
        depth, last = 0, None
        for token in self.tokens:
            if token.token_type == sqlglot.TokenType.L_PAREN:
                depth += 1
            elif token.token_type == sqlglot.TokenType.R_PAREN:
                depth -= 1
            elif token.token_type == sqlglot.TokenType.SELECT and depth == 0:
                last = token.start
        return last

    def check_output(self, qualified: exp.Query) -> None:
        names = qualified.named_selects
        if "*" in names:
            return  # a star over something unknown, already reported
        at = self.final_select_offset()
        missing = [c for c in self.chain_columns if c not in names]
        extra = [c for c in names if c not in self.chain_columns]
        doubled = sorted({c for c in names if names.count(c) > 1})
        if missing:
            self.report(
                at,
                f"drops {', '.join(missing)}: a fix returns every chain column "
                "(use select * replace (...) to change one)",
            )
        if extra:
            self.report(
                at,
                f"adds {', '.join(extra)}, not a chain column "
                f"(the chain's columns are those of {self.fix.chain_start})",
            )
        if doubled:
            self.report(at, f"returns {', '.join(doubled)} twice")

    def check_kept_as_is(self, qualified: exp.Query) -> None:
        root = build_scope(qualified)
        if root is None:
            return
        for name in self.fix.kept:
            if name not in qualified.named_selects:
                continue  # reported as dropped
            bad = self.changed_projection(root, name)
            if bad is not None:
                self.report_at(
                    bad,
                    f"{name} must pass through unchanged: {self.fix.kept_why}",
                    self.final_select_offset(),
                )

    def changed_projection(self, scope: Scope, name: str) -> exp.Expr | None:
        """The expression that computes `name` other than by passing the input's through."""
        if scope.set_operation_scopes:
            for branch in scope.set_operation_scopes:
                bad = self.changed_projection(branch, name)
                if bad is not None:
                    return bad
            return None
        select = scope.expression
        if not isinstance(select, exp.Select):
            return select
        projection = next((p for p in select.expressions if p.alias_or_name == name), None)
        if projection is None:
            return None
        value = projection.this if isinstance(projection, exp.Alias) else projection
        if isinstance(value, exp.Coalesce):  # a join's USING column: the left side's value
            parts = [value.this, *value.expressions]
            if all(isinstance(p, exp.Column) and p.name == name for p in parts):
                value = parts[0]
        if not isinstance(value, exp.Column) or value.name != name or not value.table:
            return value if isinstance(value, exp.Expr) else None
        source = scope.sources.get(value.table)
        if isinstance(source, Scope):
            return self.changed_projection(source, name)
        if isinstance(source, exp.Table) and self.relation_key(source) == self.fix.input_relation:
            return None
        return value


def lint_fix(
    fix: CompiledFix, schemas: dict[str, list[str]], chain_columns: list[str]
) -> list[Problem]:
    """Problems of one compiled fix, sorted by position, each once (a macro's output may
    hold the same mistake several times, all mapped to the macro call)."""
    return sorted(set(FixLinter(fix, schemas, chain_columns).run()))
