"""`loader emulate`: a local Events API (or a direct destination's stand-in) to rehearse a
backfill against."""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from loader import settings
from loader.cli.common import err, handles_loader_errors, out
from loader.errors import LoaderError

if TYPE_CHECKING:
    from loader.emulator.server import Emulator, EmulatorConfig


@handles_loader_errors
def emulate_command(
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1; 0 picks a free one.")] = 0,
    db: Annotated[
        Path | None,
        typer.Option(
            "--db",
            help="DuckDB file to record accepted batches in (tables received_batches, "
            "received_requests; view received_events). Batches already recorded there count "
            "for de-duplication.",
        ),
    ] = None,
    reset: Annotated[bool, typer.Option(help="Empty the --db record first.")] = False,
    api_key: Annotated[
        str | None,
        typer.Option(envvar="MPARTICLE_API_KEY", help="API key to accept.", show_default=False),
    ] = None,
    api_secret_file: Annotated[
        str | None,
        typer.Option(
            "--api-secret-file",
            help="File holding the API secret to accept (- for stdin). Default: "
            "MPARTICLE_API_SECRET. Never on the command line, where `ps` shows it.",
            show_default=False,
        ),
    ] = None,
    latency_ms: Annotated[int, typer.Option(help="Added to every response.")] = 0,
    rate_limit: Annotated[
        float | None,
        typer.Option(help="Batches/s allowed; over it: 429 with Retry-After. Default: none."),
    ] = None,
    share_429: Annotated[
        float, typer.Option(help="Share of requests answered 429 with Retry-After.")
    ] = 0.0,
    share_503: Annotated[float, typer.Option(help="Share of requests answered 503.")] = 0.0,
    share_drop: Annotated[
        float,
        typer.Option(help="Share of requests processed, then dropped without an answer."),
    ] = 0.0,
    retry_after: Annotated[int, typer.Option(help="Retry-After seconds of random 429s.")] = 1,
    seed: Annotated[int, typer.Option(help="Seed of the random faults.")] = 0,
    script: Annotated[
        str | None,
        typer.Option(
            help="Forced responses to the first requests, in order, comma-separated: "
            "429, 429:N (Retry-After N), 429-accel, 503, 400, 401, 403, drop, drop-after, "
            "slow:S, 202.",
        ),
    ] = None,
    url_file: Annotated[
        Path | None,
        typer.Option(help="Write the base URL to this file once listening (removed on exit)."),
    ] = None,
    api: Annotated[
        str,
        typer.Option(
            help="events (the Events API), or a direct destination's stand-in, named as in "
            "`loader push --destination` (its key from its env var or --api-key; --script "
            "takes 429, 503, drop, drop-after, 200).",
            case_sensitive=False,
        ),
    ] = "events",
    api_options: Annotated[
        list[str] | None,
        typer.Option(
            "--api-option",
            metavar="NAME=VALUE",
            help="A setting of the stand-in (repeatable); `--api-option help` lists them.",
            show_default=False,
        ),
    ] = None,
    per_user_limit: Annotated[str | None, typer.Option(hidden=True)] = None,
    window: Annotated[str | None, typer.Option(hidden=True)] = None,
) -> None:
    """Run a local Events API that checks every batch, injects faults and records what arrives.

    Runs until Ctrl-C or SIGTERM, then prints a one-line summary. Point `loader push` at the printed URL to rehearse a backfill.
    """  # noqa: E501
    from loader.emulator.server import serve

    if api.lower() != "events":
        options = dict(_deprecated(per_user_limit=per_user_limit, window=window))
        for text in api_options or ():
            name, sep, value = text.partition("=")
            if not sep and name.strip() != "help":
                raise LoaderError(f"--api-option {name}...: expected NAME=VALUE")
            options[name.strip().lower().replace("-", "_")] = value.strip()
        _emulate_stand_in(
            api.lower(),
            api_key,
            options,
            db,
            port,
            latency_ms,
            seed,
            script,
            (share_429, share_503, share_drop),
            url_file,
        )
        return
    api_secret = _secret(api_secret_file)
    if not api_key or not api_secret:
        raise LoaderError(
            "the emulator needs credentials to check: the API key with --api-key or "
            "MPARTICLE_API_KEY, the secret in MPARTICLE_API_SECRET or a file given with "
            "--api-secret-file PATH (- for stdin)"
        )
    stop = _stop_on_signals()
    config = _config(
        api_key=api_key,
        api_secret=api_secret,
        db=db,
        reset=reset,
        port=port,
        latency_ms=latency_ms,
        rate_limit=rate_limit,
        share_429=share_429,
        share_503=share_503,
        share_drop=share_drop,
        retry_after=retry_after,
        seed=seed,
    )
    script_entries = [entry.strip() for entry in (script or "").split(",") if entry.strip()]
    emulator = serve(config, stop, script=script_entries, url_file=url_file, on_ready=_announce)
    out.print(f"emulator stopped: {emulator.summary()}", markup=False)


def _deprecated(**values: str | None) -> dict[str, str]:
    given = {}
    for name, value in values.items():
        if value is not None:
            err.print(
                f"--{name.replace('_', '-')} is deprecated: use --api-option {name}=VALUE",
                markup=False,
                highlight=False,
            )
            given[name] = value
    return given


def _emulate_stand_in(
    name: str,
    api_key: str | None,
    options: dict[str, str],
    db: Path | None,
    port: int,
    latency_ms: int,
    seed: int,
    script: str | None,
    shares: tuple[float, float, float],
    url_file: Path | None,
) -> None:
    from loader.emulator.registry import stand_in
    from loader.emulator.stand_in import Faults

    chosen = stand_in(name)
    if "help" in options:
        out.print(f"{name} stand-in settings (--api-option NAME=VALUE):", markup=False)
        for option, meaning in chosen.options.items():
            out.print(f"  {option}  {meaning}", markup=False, highlight=False)
        return
    unknown = sorted(set(options) - set(chosen.options))
    if unknown:
        raise LoaderError(
            f"--api-option: the {name} stand-in takes no {', '.join(unknown)}; it takes "
            f"{', '.join(chosen.options) or 'none'}"
        )
    # its own env var first: MPARTICLE_API_KEY also fills --api-key
    key = os.environ.get(chosen.key_env) or api_key
    if not key:
        raise LoaderError(
            f"the emulator needs the API key to accept: {chosen.key_env} or --api-key"
        )
    faults = Faults(
        db=db,
        port=port,
        latency_ms=latency_ms,
        share_429=shares[0],
        share_503=shares[1],
        share_drop=shares[2],
        seed=seed,
        script=[entry.strip() for entry in (script or "").split(",") if entry.strip()],
    )
    emulator = chosen.serve(
        key,
        faults,
        options,
        _stop_on_signals(),
        url_file,
        lambda e: out.print(f"{chosen.title} on {e.url}", markup=False),
    )
    out.print(f"emulator stopped: {emulator.summary()}", markup=False)


def _secret(path: str | None) -> str | None:
    """The secret from `path` (- for stdin), else MPARTICLE_API_SECRET."""
    if path is None:
        return os.environ.get("MPARTICLE_API_SECRET") or None
    return settings.read_secret_file(path)


def _stop_on_signals() -> threading.Event:
    """An event set by Ctrl-C or SIGTERM."""
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    return stop


def _config(
    *,
    api_key: str,
    api_secret: str,
    db: Path | None,
    reset: bool,
    port: int,
    latency_ms: int,
    rate_limit: float | None,
    share_429: float,
    share_503: float,
    share_drop: float,
    retry_after: int,
    seed: int,
) -> EmulatorConfig:
    from loader.emulator.server import EmulatorConfig

    return EmulatorConfig(
        api_key=api_key,
        api_secret=api_secret,
        db_path=db,
        latency_ms=latency_ms,
        rate_limit=rate_limit,
        share_429=share_429,
        share_503=share_503,
        share_drop=share_drop,
        seed=seed,
        port=port,
        retry_after_s=retry_after,
        reset_db=reset,
        keep_in_memory=False,
    )


def _announce(emulator: Emulator) -> None:
    for line in emulator.describe():
        out.print(line, markup=False)
    out.print("  Ctrl-C or SIGTERM to stop", markup=False)
    out.file.flush()
