"""`loader push`: send the replay set to the Events API, or to a direct destination."""

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

# Earlier spellings of destination settings, still taken: --NAME VALUE is
# --destination-option NAME=VALUE (a deprecation message says so).
DeprecatedOption = Annotated[str | None, typer.Option(hidden=True, show_default=False)]
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
            "default 250 for the Events API, a direct destination's own default otherwise.",
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
            help="events_api (default), or a direct destination: its own replay set sent "
            "straight to its API (docs/destinations/).",
            case_sensitive=False,
        ),
    ] = "events_api",
    destination_options: Annotated[
        list[str] | None,
        typer.Option(
            "--destination-option",
            metavar="NAME=VALUE",
            help="A setting of the destination (repeatable); `--destination-option help` "
            "lists them. Also from env var BACKFILL_<DESTINATION>_<NAME> or "
            "--destination-options-file. Never a secret: keys come from env vars or a file.",
            show_default=False,
        ),
    ] = None,
    destination_options_file: Annotated[
        Path | None,
        typer.Option(
            "--destination-options-file",
            metavar="PATH",
            help="A TOML file of destination settings: NAME = VALUE lines under [<destination>].",
            dir_okay=False,
            show_default=False,
        ),
    ] = None,
    region: DeprecatedOption = None,
    api_key_file: DeprecatedOption = None,
    per_user_rate: DeprecatedOption = None,
    events_per_request: DeprecatedOption = None,
    min_id_length: DeprecatedOption = None,
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
    allow_triggers: Annotated[
        bool,
        typer.Option(
            "--allow-triggers",
            help="Send events that trigger messages downstream (seeds/trigger_events.csv: "
            "Braze campaigns, Customer.io journeys); without it a run that would send any is "
            "refused. The run records it.",
        ),
    ] = False,
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
    from loader.push.destination_settings import describe, parse_options, resolve
    from loader.push.destinations import route
    from loader.push.runner import PushOptions

    if out_dir is not None and not dry_run:
        raise LoaderError("--out goes with --dry-run (a push records sends in the ledger)")
    if plan is not None and dry_run:
        raise LoaderError("--plan goes with a push; a dry run (--dry-run --out DIR) makes one")
    if force and out_dir is None:
        raise LoaderError("--force goes with --dry-run --out DIR")
    destination = destination.lower()
    chosen = route(destination)  # an unknown destination is refused first
    given = _deprecated_settings(
        region=region,
        api_key_file=api_key_file,
        per_user_rate=per_user_rate,
        events_per_request=events_per_request,
        min_id_length=min_id_length,
    )
    given.update(parse_options(destination_options or ()))
    if "help" in given:
        for line in describe(destination, chosen.settings):
            out.print(line, markup=False, highlight=False)
        return
    takes = {s.name for s in chosen.settings}
    if api_secret_file is not None:
        if "api_secret_file" not in takes:
            raise LoaderError(
                f"--api-secret-file goes with the Events API; {destination} reads its "
                "credentials as `--destination-option help` says"
            )
        given.setdefault("api_secret_file", api_secret_file)
    destination_settings = resolve(
        destination, chosen.settings, given, file=destination_options_file
    )
    if "pod" in takes:
        destination_settings.setdefault("pod", pod)
    sample = _sample(sample_users, user_keys)
    if sample is not None and resend_changed:
        raise LoaderError(
            "--resend-changed goes with a full push, not with --sample-users / --user-key"
        )
    options = PushOptions(
        endpoint=chosen.endpoint_url(destination_settings, endpoint),
        workers=workers,
        rate=rate if rate is not None else chosen.default_rate,
        max_retries=max_retries,
        timeout_s=timeout,
        resend_changed=resend_changed,
        destination=destination,
        destination_settings=destination_settings,
        sample=sample,
        allow_triggers=allow_triggers,
    )
    # an object-storage URI stays text: a Path would turn s3:// into s3:/
    replay: Path | str = settings.warehouse_path() if replay_set is None else replay_set
    if isinstance(replay, str) and store_of_uri(replay) is None:
        replay = Path(replay)
    try:
        report = (
            _plan(options, replay, out_dir, force)
            if dry_run
            else _send(options, replay, as_json=as_json, plan_path=plan)
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


def _deprecated_settings(**values: str | None) -> dict[str, str]:
    """Settings given in an earlier spelling (--region eu), each with a deprecation message."""
    given = {}
    for option, value in values.items():
        if value is not None:
            flag = "--" + option.replace("_", "-")
            err.print(
                f"{flag} is deprecated: use --destination-option {option}=VALUE",
                markup=False,
                highlight=False,
            )
            given[option] = value
    return given


def _send(
    options: PushOptions, replay: Path | str, *, as_json: bool, plan_path: Path | None = None
) -> PushReport:
    from loader.push.runner import push

    credentials = options.route.credentials(options.destination_settings)
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
