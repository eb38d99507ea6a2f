"""dbt run inside the test process, as the `dbt` program would run it.

Starting the `dbt` program costs every run about 5 s of CPU (importing dbt) before it
parses anything; the tests run dbt some hundred times. dbt's programmatic entry point
(`dbtRunner`) runs the same command in this process, so a pytest worker imports dbt once.
Each run gets what a subprocess would: the given working folder and environment
variables (restored after), its console output, and the program's exit code (0 success,
1 a node failed, 2 dbt stopped with an error). Nothing of a run outlives it: the DuckDB
files it opened are closed, and dbt-duckdb's warn-once memory is cleared. Runs are one at
a time (dbt's flags and adapters are global). `TEST_DBT_SUBPROCESS=1` runs the `dbt`
program instead, to compare the two.
"""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

_one_at_a_time = threading.Lock()


def run_dbt_command(
    args: list[str], *, cwd: Path, env: dict[str, str]
) -> subprocess.CompletedProcess:
    """`dbt ARGS` in folder `cwd`, with the environment and `env`: exit code and output."""
    if os.environ.get("TEST_DBT_SUBPROCESS"):
        program = str(Path(sys.executable).parent / "dbt")
        return subprocess.run(
            [program, *args], cwd=cwd, env={**os.environ, **env}, capture_output=True, text=True
        )
    from dbt.cli.main import dbtRunner
    from dbt_common.events.functions import capture_stdout_logs, stop_capture_stdout_logs

    output = io.StringIO()
    with _one_at_a_time, _working_folder(cwd), _environment(env):
        capture_stdout_logs(output)
        try:
            result = dbtRunner().invoke(list(args))
        finally:
            stop_capture_stdout_logs()
            _close_duckdb()
    if isinstance(result.exception, KeyboardInterrupt):
        raise result.exception
    returncode = 0 if result.success else 1 if result.exception is None else 2
    return subprocess.CompletedProcess(["dbt", *args], returncode, output.getvalue(), "")


@contextlib.contextmanager
def _working_folder(folder: Path) -> Iterator[None]:
    before = os.getcwd()
    os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(before)


@contextlib.contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    before = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _close_duckdb() -> None:
    """Close the DuckDB database dbt-duckdb keeps for the process, and forget the warnings
    it shows once a process (a `dbt` program shows them once a run)."""
    from dbt.adapters.duckdb.connections import DuckDBConnectionManager

    with DuckDBConnectionManager._LOCK:
        environment = DuckDBConnectionManager._ENV
        if environment is not None:
            environment.close()
        DuckDBConnectionManager._ENV = None
        DuckDBConnectionManager._LOGGED_MESSAGES.clear()
