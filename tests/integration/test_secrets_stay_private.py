"""The API secret is never a command-line argument (visible in `ps`), and child processes
(dbt started by `loader lint`) do not inherit it."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from typer.testing import CliRunner

from loader.cli import app
from loader.fixes import lint_compile

runner = CliRunner()
KEY, SECRET = "emu-key-3", "emu-secret-8c1f77"
LOADER = str(Path(sys.executable).parent / "loader")


def test_emulate_has_no_api_secret_option():
    result = runner.invoke(app, ["emulate", "--api-secret", SECRET])
    assert result.exit_code == 2
    assert "No such option: --api-secret" in result.output


def emulator(tmp_path: Path, *args: str, stdin: str | None = None, env: dict | None = None):
    """Start `loader emulate`; its URL, its command line as `ps` shows it, and the process."""
    url_file = tmp_path / "url"
    base_env = {k: v for k, v in os.environ.items() if not k.startswith("MPARTICLE_")}
    process = subprocess.Popen(
        [LOADER, "emulate", "--api-key", KEY, "--url-file", str(url_file), *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**base_env, **(env or {})},
    )
    if stdin is not None:
        process.stdin.write(stdin)
    process.stdin.close()
    process.stdin = None  # closed: communicate() only reads
    for _ in range(100):
        if url_file.exists() and url_file.read_text():
            break
        if process.poll() is not None:
            break
        time.sleep(0.1)
    cmdline = Path(f"/proc/{process.pid}/cmdline").read_bytes() if process.poll() is None else b""
    return (url_file.read_text().strip() if url_file.exists() else ""), cmdline, process


def stop(process: subprocess.Popen) -> tuple[str, str]:
    if process.poll() is None:
        process.terminate()
    stdout, stderr = process.communicate(timeout=10)
    return stdout, stderr


def status_with(url: str, secret: str) -> int:
    answer = requests.post(url + "/bulkevents", data=b"[]", auth=(KEY, secret), timeout=5)
    return answer.status_code


@pytest.mark.parametrize("source", ["file", "stdin", "env"])
def test_emulate_takes_the_secret_from_a_file_stdin_or_the_environment(tmp_path, source):
    if source == "file":
        secret_file = tmp_path / "secret"
        secret_file.write_text(SECRET + "\n")
        url, cmdline, process = emulator(tmp_path, "--api-secret-file", str(secret_file))
    elif source == "stdin":
        url, cmdline, process = emulator(tmp_path, "--api-secret-file", "-", stdin=SECRET + "\n")
    else:
        url, cmdline, process = emulator(tmp_path, env={"MPARTICLE_API_SECRET": SECRET})
    try:
        assert url.startswith("http://127.0.0.1:"), stop(process)
        assert SECRET.encode() not in cmdline
        assert status_with(url, "wrong") == 403
        assert status_with(url, SECRET) not in (401, 403)
    finally:
        stdout, stderr = stop(process)
    assert SECRET not in stdout + stderr


def test_emulate_without_a_secret_says_where_to_put_it(tmp_path):
    _, _, process = emulator(tmp_path)
    stdout, stderr = stop(process)
    assert process.returncode == 2
    assert stderr == (
        "error: the emulator needs credentials to check: the API key with --api-key or "
        "MPARTICLE_API_KEY, the secret in MPARTICLE_API_SECRET or a file given with "
        "--api-secret-file PATH (- for stdin)\n"
    )


def test_emulate_with_an_empty_secret_file(tmp_path):
    empty = tmp_path / "secret"
    empty.write_text("\n")
    _, _, process = emulator(tmp_path, "--api-secret-file", str(empty))
    _, stderr = stop(process)
    assert process.returncode == 2
    assert stderr == f"error: --api-secret-file {empty}: the file is empty\n"


def test_lint_starts_dbt_without_the_credentials(tmp_path, monkeypatch):
    monkeypatch.setenv("MPARTICLE_API_SECRET", SECRET)
    monkeypatch.setenv("MPARTICLE_API_KEY", KEY)
    monkeypatch.setenv("AMPLITUDE_API_KEY", "amp")
    monkeypatch.setenv("DBT_PROFILES_DIR", "/kept")
    seen: list[dict] = []

    def fake_run(command, *, env, **kwargs):
        seen.append(env)
        return subprocess.CompletedProcess(command, 1, "", "")

    monkeypatch.setattr(lint_compile.subprocess, "run", fake_run)
    with pytest.raises(lint_compile.CompileFailed):
        lint_compile.compile_fixes(tmp_path, ["fix_a"], tmp_path / "work")
    [env] = seen
    assert not [name for name in env if name.startswith(("MPARTICLE_", "AMPLITUDE_"))]
    assert env["BACKFILL_DUCKDB"] == str(tmp_path / "work" / "lint.duckdb")
    assert env["DBT_PROFILES_DIR"] == "/kept"
    assert env["PATH"] == os.environ["PATH"]
