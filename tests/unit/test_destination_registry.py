"""One registry entry per destination: its settings from one schema, its name nowhere else,
and a `loader push --help` that does not grow with each destination."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from loader.cli import app
from loader.push.destination_settings import SettingsError, parse_options, resolve
from loader.push.destinations import ROUTES, route
from loader.push.runner import PushOptions

ROOT = Path(__file__).resolve().parents[2]
# where a direct destination may be named: its module (and contract), its stand-in, the
# registries; the ledger reads keys that releases before the destination column wrote
ALLOWED = {
    "loader/push/destinations/__init__.py",
    "loader/emulator/registry.py",
}
DIRECT = sorted(set(ROUTES) - {"events_api"})


def allowed(path: str, name: str) -> bool:
    return (
        path in ALLOWED
        or path.startswith("loader/push/ledger")
        or path
        in {
            f"loader/push/destinations/{name}.py",
            f"loader/emulator/{name}.py",
        }
        or path.startswith(f"loader/{name}_api/")
    )


def test_every_destination_is_one_registry_entry_of_its_own_module():
    for name, entry in ROUTES.items():
        assert entry.name == name
        assert entry.settings, name  # a destination says what it takes
    assert "amplitude" in DIRECT


@pytest.mark.parametrize("name", DIRECT)
def test_a_destination_is_named_only_in_its_own_modules(name):
    found = []
    for folder in ("loader", "macros"):
        for path in sorted((ROOT / folder).rglob("*")):
            if path.suffix not in (".py", ".sql") or "__pycache__" in path.parts:
                continue
            relative = path.relative_to(ROOT).as_posix()
            if allowed(relative, name):
                continue
            for number, line in enumerate(path.read_text().splitlines(), 1):
                if re.search(name, line, re.IGNORECASE):
                    found.append(f"{relative}:{number}: {line.strip()}")
    assert found == []


def test_push_help_names_no_destination_and_hides_the_old_spellings():
    result = CliRunner().invoke(app, ["push", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    assert "--destination-option" in result.stdout
    for name in DIRECT:
        assert name not in result.stdout.lower()
    for old in ("--region", "--api-key-file", "--per-user-rate", "--min-id-length"):
        assert old not in result.stdout


def test_settings_come_from_the_option_then_the_env_then_the_file(tmp_path):
    schema = route("amplitude").settings
    file = tmp_path / "destinations.toml"
    file.write_text('[amplitude]\nregion = "eu"\nper_user_rate = 50\nevents_per_request = 9\n')
    env = {"BACKFILL_AMPLITUDE_PER_USER_RATE": "70", "BACKFILL_AMPLITUDE_REGION": " "}
    given = parse_options(["events-per-request=12"])
    resolved = resolve("amplitude", schema, given, env=env, file=file)
    assert resolved == {"region": "eu", "per_user_rate": 70.0, "events_per_request": 12}
    assert resolve("amplitude", schema, {}, env={}) == {}  # defaults are the destination's


def test_a_setting_lowers_the_events_a_request():
    options = PushOptions(
        endpoint="http://127.0.0.1:1/batch",
        rate=5_000,
        destination="amplitude",
        destination_settings={"events_per_request": 12},
    )
    assert options.limits.max_batches_per_request == 12


@pytest.mark.parametrize(
    ("option", "message"),
    [
        ("region=mars", "region must be one of us, eu, not 'mars'"),
        ("per_user_rate=2000", "per_user_rate must be at most 1000"),
        ("per_user_rate=nan", "per_user_rate must be at least 0.1"),
        ("events_per_request=1.5", "events_per_request must be a whole number, not '1.5'"),
    ],
)
def test_a_bad_setting_is_named_with_its_origin(option, message):
    with pytest.raises(SettingsError) as caught:
        resolve("amplitude", route("amplitude").settings, parse_options([option]), env={})
    assert str(caught.value) == f"--destination-option {option.split('=')[0]}: {message}"


def test_a_value_for_an_unknown_setting_is_never_shown():
    with pytest.raises(SettingsError) as caught:
        resolve("amplitude", route("amplitude").settings, parse_options(["api_key=s3cr3t"]))
    assert "s3cr3t" not in str(caught.value)
    assert "takes no setting api_key (value not shown)" in str(caught.value)
    assert "region, api_key_file" in str(caught.value)


def test_the_old_spellings_still_work_with_a_deprecation_message(tmp_path):
    result = CliRunner().invoke(
        app,
        ["push", "--destination", "amplitude", "--region", "mars", "--dry-run"],
        env={"BACKFILL_DUCKDB": str(tmp_path / "none.duckdb")},
    )
    assert "--region is deprecated: use --destination-option region=VALUE" in result.stderr
    assert "region must be one of us, eu, not 'mars'" in result.stderr
    assert result.exit_code == 2


def test_destination_option_help_lists_the_settings():
    result = CliRunner().invoke(
        app, ["push", "--destination", "amplitude", "--destination-option", "help"]
    )
    assert result.exit_code == 0, result.output
    assert "per_user_rate=float" in result.stdout
    assert "BACKFILL_AMPLITUDE_REGION" in result.stdout
