"""`loader push`: send the replay set to the Events API."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from loader import settings
from loader.cli.common import JsonOption, err, handles_loader_errors, out
from loader.cli.push_render import PushDisplay, print_outcome, print_plan
from loader.errors import LoaderError
from loader.object_storage import store_of_uri

if TYPE_CHECKING:
    from loader.push.runner import PushOptions, PushReport
    from loader.push.send_plan import SampleRequest

AMPLITUDE = "amplitude"
PodOption = Annotated[
    str,
    typer.Option(help="mParticle pod to send to: us1, us2, eu1 or au1.", case_sensitive=False),
]


@handles_loader_errors
def push_command(
    pod: PodOption = "us1",
    endpoint: Annotated[
        str | None,
        typer.Option(
            help="Base URL instead of a pod, e.g. http://127.0.0.1:8080/v2 for the emulator. "
            "Requests go to BASE_URL/bulkevents.",
            show_default=False,
        ),
    ] = None,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run", help="Plan and build every request, send nothing (no credentials)."
        ),
    ] = False,
    out_dir: Annotated[
        Path | None,
        typer.Option(
            "--out",
            help="With --dry-run: write the exact request bodies, plan.json and "
            "rejected.ndjson to this folder (new or empty; see --force). A symbolic link is "
            "refused.",
            file_okay=False,
            show_default=False,
        ),
    ] = None,
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="With --out: use a folder that is not empty, replacing an earlier dry run's "
            "files there (request-*.json, plan.json, rejected.ndjson).",
        ),
    ] = False,
    workers: Annotated[int, typer.Option(min=1, max=64, help="Concurrent requests.")] = 8,
    rate: Annotated[
        float | None,
        typer.Option(
            min=0.1,
            help="Batches per second, shared by all workers (mParticle's default limit is 270); "
            "default 250, and 1000 events/s for --destination amplitude.",
            show_default=False,
        ),
    ] = None,
    max_retries: Annotated[
        int, typer.Option(min=0, help="Retries of a request after 5xx, timeouts, drops.")
    ] = 8,
    timeout: Annotated[
        float, typer.Option(min=0.1, help="Seconds to wait for an answer before retrying.")
    ] = 30.0,
    resend_changed: Annotated[
        bool,
        typer.Option(
            "--resend-changed",
            help="Also send events whose content changed after they were acknowledged "
            "(or after an unanswered send). Downstream sees them twice.",
        ),
    ] = False,
    destination: Annotated[
        str,
        typer.Option(
            help="events_api (default), or amplitude: send amplitude_events straight to "
            "Amplitude's Batch Event Upload API (docs/destinations/amplitude.md).",
            case_sensitive=False,
        ),
    ] = "events_api",
    region: Annotated[
        str | None,
        typer.Option(
            help="With --destination amplitude: us (api2.amplitude.com, default) or eu "
            "(api.eu.amplitude.com).",
            show_default=False,
        ),
    ] = None,
    api_key_file: Annotated[
        str | None,
        typer.Option(
            help="With --destination amplitude: read the Amplitude API key from this file "
            "(- for stdin) instead of AMPLITUDE_API_KEY.",
            show_default=False,
        ),
    ] = None,
    per_user_rate: Annotated[
        float,
        typer.Option(
            min=0.1,
            max=1000,
            help="With --destination amplitude: events per second per user_id and per "
            "device_id (Amplitude throttles above 1000).",
        ),
    ] = 800.0,
    events_per_request: Annotated[
        int | None,
        typer.Option(
            min=1,
            max=2000,
            help="With --destination amplitude: events per request (at most Amplitude's 2000, "
            "the default).",
            show_default=False,
        ),
    ] = None,
    min_id_length: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="With --destination amplitude: sent as options.min_id_length when not 5. "
            "Default: the build's var amplitude_min_id_length (replay_build_settings).",
            show_default=False,
        ),
    ] = None,
    sample_users: Annotated[
        int | None,
        typer.Option(
            "--sample-users",
            min=1,
            metavar="N",
            help="A test send: only the events of N users, picked to cover the most (event "
            "type, event name) pairs still to send. A later plain push sends the rest.",
            show_default=False,
        ),
    ] = None,
    user_keys: Annotated[
        list[str] | None,
        typer.Option(
            "--user-key",
            metavar="KEY",
            help="A test send of this user's events (replay_events.user_key; repeatable). "
            "With --sample-users N, these come first among the N.",
            show_default=False,
        ),
    ] = None,
    api_secret_file: Annotated[
        str | None,
        typer.Option(
            "--api-secret-file",
            metavar="PATH",
            help="File holding the API secret (- for stdin; one trailing newline is dropped). "
            "Default: MPARTICLE_API_SECRET. Never on the command line, where `ps` shows it.",
            show_default=False,
        ),
    ] = None,
    replay_set: Annotated[
        str | None,
        typer.Option(
            "--replay-set",
            metavar="PATH",
            help="Read the replay set from Parquet files (a file, a folder or a glob, local or "
            "an s3://, gs:// or az:// URI) with the contracted replay_events columns, written "
            "by another engine, instead of the warehouse.",
            show_default=False,
        ),
    ] = None,
    plan: Annotated[
        Path | None,
        typer.Option(
            "--plan",
            metavar="PLAN_JSON",
            help="Send only what a reviewed dry run planned: the plan.json of `--dry-run --out "
            "DIR`. Refused (exit 2, saying what changed: fixes, vars, events per name, the "
            "ledger) when the replay set or the ledger no longer give its hash.",
            dir_okay=False,
            show_default=False,
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Send the replay set (replay_events) to the Events API, recording every send in the ledger.

    Runs again safely: acknowledged events are skipped, interrupted batches are resent with the same source_request_id. Credentials come from MPARTICLE_API_KEY and MPARTICLE_API_SECRET (or --api-secret-file). Exits 1 when a batch failed or was refused.
    """  # noqa: E501
    from loader.push.destinations import route
    from loader.push.runner import PushOptions

    if out_dir is not None and not dry_run:
        raise LoaderError("--out goes with --dry-run (a push records sends in the ledger)")
    if plan is not None and dry_run:
        raise LoaderError("--plan goes with a push; a dry run (--dry-run --out DIR) makes one")
    if force and out_dir is None:
        raise LoaderError("--force goes with --dry-run --out DIR")
    destination = destination.lower()
    sample = _sample(sample_users, user_keys)
    if sample is not None and resend_changed:
        raise LoaderError(
            "--resend-changed goes with a full push, not with --sample-users / --user-key"
        )
    options = PushOptions(
        endpoint=_endpoint(destination, pod, region, endpoint),
        workers=workers,
        rate=rate if rate is not None else route(destination).default_rate,
        max_retries=max_retries,
        timeout_s=timeout,
        resend_changed=resend_changed,
        destination=destination,
        sample=sample,
    )
    if destination == AMPLITUDE:
        options.batches_per_request = events_per_request
        options.destination_settings = {"per_id_rate": per_user_rate}
        if min_id_length is not None:
            options.destination_settings["min_id_length"] = min_id_length
    elif region is not None or api_key_file is not None:
        raise LoaderError("--region and --api-key-file go with --destination amplitude")
    if destination == AMPLITUDE and api_secret_file is not None:
        raise LoaderError("--api-secret-file goes with the Events API; use --api-key-file")
    # an object-storage URI stays text: a Path would turn s3:// into s3:/
    replay: Path | str = settings.warehouse_path() if replay_set is None else replay_set
    if isinstance(replay, str) and store_of_uri(replay) is None:
        replay = Path(replay)
    try:
        report = (
            _plan(options, replay, out_dir, force)
            if dry_run
            else _send(
                options,
                replay,
                api_secret_file,
                as_json=as_json,
                api_key_file=api_key_file,
                plan_path=plan,
            )
        )
    except KeyboardInterrupt:
        err.print("interrupted: run `loader push` again to resume (nothing is sent twice)")
        raise typer.Exit(130) from None
    if as_json:
        out.print_json(json.dumps(report.as_dict(), default=str))
    else:
        if dry_run:
            print_plan(report)
        print_outcome(report)
    if report.status == "stopped":
        raise typer.Exit(2)
    if not report.ok:
        raise typer.Exit(1)


def _sample(users: int | None, user_keys: list[str] | None) -> SampleRequest | None:
    if users is None and not user_keys:
        return None
    from loader.push.send_plan import SampleRequest

    keys = tuple(dict.fromkeys(user_keys or ()))
    return SampleRequest(users=max(users or 0, len(keys)), user_keys=keys)


def _plan(
    options: PushOptions, replay: Path | str, out_dir: Path | None, force: bool
) -> PushReport:
    from loader.push.runner import dry_run

    return dry_run(replay, settings.ledger_path(), options, out_dir, force=force)


def _endpoint(destination: str, pod: str, region: str | None, endpoint: str | None) -> str:
    from loader.push.destinations import amplitude, events_api, route

    route(destination)  # an unknown destination is refused first
    if destination == AMPLITUDE:
        return amplitude.endpoint_url(region, endpoint)
    return events_api.endpoint_url(pod, endpoint)


def _send(
    options: PushOptions,
    replay: Path | str,
    api_secret_file: str | None,
    *,
    as_json: bool,
    api_key_file: str | None = None,
    plan_path: Path | None = None,
) -> PushReport:
    from loader.push.destinations.amplitude import AmplitudeCredentials
    from loader.push.destinations.events_api import Credentials
    from loader.push.runner import push

    credentials: Credentials | AmplitudeCredentials
    if options.destination == AMPLITUDE:
        credentials = AmplitudeCredentials.load(api_key_file)
    else:
        secret = None if api_secret_file is None else settings.read_secret_file(api_secret_file)
        credentials = Credentials.from_env(secret)
    with PushDisplay(enabled=not as_json and out.is_terminal) as display:
        return push(
            replay,
            settings.ledger_path(),
            options,
            credentials,
            on_planned=None if as_json else display.planned,
            on_progress=display.update,
            plan_path=plan_path,
        )
