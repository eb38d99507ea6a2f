"""A destination's settings: its schema, resolved from options, env vars and a file.

A destination declares what it takes as a tuple of `Setting`s. `resolve` reads, for each
one, the first of: `--destination-option NAME=VALUE`, the env var
`BACKFILL_<DESTINATION>_<NAME>`, and the destination's table in a TOML file
(`--destination-options-file`, `[<destination>]`). Only the settings given somewhere are
returned: the destination applies its own defaults (and those of the build).

No setting is a secret: a destination reads its keys and tokens from env vars or from a
file whose path is a setting (`..._file`, `-` for stdin). A value given for a name the
destination does not take is never shown back (it may be a key typed by mistake).
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loader.errors import LoaderError

ENV_PREFIX = "BACKFILL_"


class SettingsError(LoaderError):
    """A destination setting that is unknown, malformed or out of range."""


@dataclass(frozen=True)
class Setting:
    """One setting of a destination: its name, what it means, its kind and range."""

    name: str
    help: str
    kind: type = str  # str, int or float
    choices: tuple[str, ...] = ()
    minimum: float | None = None
    maximum: float | None = None

    def env_var(self, destination: str) -> str:
        return f"{ENV_PREFIX}{destination}_{self.name}".upper()

    def parse(self, text: object, where: str) -> Any:
        """`text` as this setting's kind, checked; `where` names its origin in errors."""
        value: Any = text
        if self.kind is not str or not isinstance(text, str):
            try:
                if isinstance(text, bool):
                    raise ValueError
                value = self.kind(text)
            except (TypeError, ValueError):
                kind = {int: "a whole number", float: "a number"}.get(self.kind, "a text")
                raise SettingsError(f"{where}: {self.name} must be {kind}, not {text!r}") from None
        if self.kind is str:
            value = str(value).strip()
            if self.choices:
                value = value.lower()
                if value not in self.choices:
                    raise SettingsError(
                        f"{where}: {self.name} must be one of {', '.join(self.choices)}, "
                        f"not {text!r}"
                    )
            elif not value:
                raise SettingsError(f"{where}: {self.name} must not be empty")
        else:
            if value != value or (self.minimum is not None and value < self.minimum):
                raise SettingsError(f"{where}: {self.name} must be at least {self.minimum:g}")
            if self.maximum is not None and value > self.maximum:
                raise SettingsError(f"{where}: {self.name} must be at most {self.maximum:g}")
        return value

    def describe(self, destination: str) -> str:
        shown = f"{self.name}=" + ("|".join(self.choices) if self.choices else self.kind.__name__)
        return f"{shown}  {self.help} (env {self.env_var(destination)})"


def parse_options(texts: Iterable[str]) -> dict[str, str]:
    """`NAME=VALUE` texts (or `help`) as a mapping; the last one wins. Values are never
    shown in errors."""
    given: dict[str, str] = {}
    for text in texts:
        name, sep, value = text.partition("=")
        name = name.strip().lower().replace("-", "_")
        if name == "help" and not sep:
            given[name] = ""
            continue
        if not sep or not name:
            raise SettingsError(
                f"--destination-option {name or '?'}...: expected NAME=VALUE "
                "(`--destination-option help` lists the destination's settings)"
            )
        given[name] = value
    return given


def read_options_file(path: Path, destination: str) -> dict[str, Any]:
    """The `[<destination>]` table of TOML file `path` (empty when it has none)."""
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise SettingsError(f"--destination-options-file {path}: {exc.strerror}") from None
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise SettingsError(f"--destination-options-file {path}: not TOML ({exc})") from None
    table = document.get(destination, {})
    if not isinstance(table, dict):
        raise SettingsError(
            f"--destination-options-file {path}: [{destination}] must be a table of "
            "NAME = VALUE lines"
        )
    return table


def resolve(
    destination: str,
    schema: Iterable[Setting],
    options: Mapping[str, str],
    *,
    env: Mapping[str, str] | None = None,
    file: Path | None = None,
) -> dict[str, Any]:
    """The settings given for `destination`, by name, parsed and checked (see the module
    docstring for the order). Raises `SettingsError` naming the setting and its origin."""
    by_name = {s.name: s for s in schema}
    env = os.environ if env is None else env
    from_file = read_options_file(file, destination) if file is not None else {}
    for origin, names in (("--destination-option", options), (str(file), from_file)):
        unknown = sorted(set(names) - set(by_name))
        if unknown:
            takes = ", ".join(by_name) or "no settings"
            raise SettingsError(
                f"{origin}: {destination} takes no setting {', '.join(unknown)} (value not "
                f"shown); it takes: {takes}"
            )
    resolved: dict[str, Any] = {}
    for name, setting in by_name.items():
        variable = setting.env_var(destination)
        if name in options:
            resolved[name] = setting.parse(options[name], f"--destination-option {name}")
        elif env.get(variable, "").strip():
            resolved[name] = setting.parse(env[variable], variable)
        elif name in from_file:
            resolved[name] = setting.parse(from_file[name], f"{file} [{destination}]")
    return resolved


def describe(destination: str, schema: Iterable[Setting]) -> list[str]:
    """One line per setting, for `--destination-option help`."""
    lines = [f"  {s.describe(destination)}" for s in schema]
    return (
        [f"{destination} settings (--destination-option NAME=VALUE):", *lines]
        if lines
        else [f"{destination} takes no settings"]
    )
