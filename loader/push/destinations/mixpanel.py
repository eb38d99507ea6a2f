"""Mixpanel's Import Events API as a push destination: `POST {host}/import?strict=1`.

The API, from Mixpanel's public docs:
- https://docs.mixpanel.com/reference/import-events: a request is a JSON array of at most
  2000 events and 10MB uncompressed; `Content-Encoding: gzip` is accepted; auth is HTTP
  Basic with a service account (username and secret, and `project_id` in the query), or
  the project token as the username with an empty password; with `strict=1` a 400 names
  each event that failed validation, and the events that passed are ingested;
  `$insert_id` (at most 36 bytes, letters, digits and `-`) de-duplicates a resend.
- https://docs.mixpanel.com/troubleshooting/errors/400-bad-request: the 400 body:
  `num_records_imported` and `failed_records[{index, insert_id, field, message}]`.
- https://docs.mixpanel.com/reference/rate-limits and
  https://docs.mixpanel.com/troubleshooting/errors/429-rate-limit-exceeded: per project,
  2GB of uncompressed JSON a minute or about 30k events/s on a rolling minute; over it a
  429, with no documented Retry-After: back off exponentially (2 s doubling to 60 s).
- https://docs.mixpanel.com/reference/overview: ingestion hosts api.mixpanel.com, EU
  residency api-eu.mixpanel.com, India residency api-in.mixpanel.com.
- https://docs.mixpanel.com/reference/track-event (its limits are /import's): an event
  must be smaller than 1MB of uncompressed JSON.

The replay set is `mixpanel_events` (dbt decides every field, `$insert_id` from the replay
key, so a resend de-duplicates); its rows are recorded in the ledger under the
destination `mixpanel`, apart from the other destinations'.

- Packing: one ledger batch is one event, its body the event's JSON as the model wrote
  it; a request is a JSON array of at most 2000 events and 10,000,000 bytes (the smaller
  reading of "10MB"), sent gzip-compressed.
- Answers (`classify`): 200 accepted; a 400 naming `failed_records`: those events are
  refused with Mixpanel's message, the others sent again (their `$insert_id` makes that
  harmless); a 400 naming none, and a 413, split the request; 429: everyone waits
  (Retry-After when given, else the transport's backoff) and the shared rate is lowered;
  5xx, 408: the same body again; 401, 403, 404, 405, redirects: the run stops.
- Credentials: the project token from MIXPANEL_PROJECT_TOKEN, or a service account (the
  setting `service_account`, its secret from MIXPANEL_SERVICE_ACCOUNT_SECRET) with the
  setting `project_id`; either secret may come from the file the setting `secret_file`
  names. No secret is written anywhere: dry-run bodies hold none, texts that leave the
  loader pass through `redact`.
"""

from __future__ import annotations

import base64
import gzip
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from urllib.parse import quote, urlsplit

import requests

from loader.push.destination import (
    Answer,
    ConfigurationError,
    Route,
    Settings,
    Signals,
    Verdict,
    answer_error,
    json_answer,
    retry_after_seconds,
)
from loader.push.destination_settings import Setting
from loader.push.destinations.events_api import is_loopback
from loader.push.packing import OneEventPacking, PackingLimits
from loader.refusals import Coded
from loader.settings import read_secret_file

NAME = "mixpanel"
TOKEN_ENV = "MIXPANEL_PROJECT_TOKEN"
ACCOUNT_ENV = "MIXPANEL_SERVICE_ACCOUNT"
ACCOUNT_SECRET_ENV = "MIXPANEL_SERVICE_ACCOUNT_SECRET"
ID_KEY_PREFIX = b"mixpanel:"  # a batch's id is computed over mixpanel:<replay_key>
REPLAY_TABLE = "mixpanel_events"
HOSTS = {
    "us": "https://api.mixpanel.com",
    "eu": "https://api-eu.mixpanel.com",
    "in": "https://api-in.mixpanel.com",
}
IMPORT_PATH = "/import"
MAX_EVENTS_PER_REQUEST = 2_000
MAX_REQUEST_BYTES = 10_000_000  # "10MB uncompressed", the smaller reading
MAX_EVENT_BYTES = 1_000_000 - 1  # "smaller than 1MB of uncompressed JSON"
# ours, well under the documented ~30k events/s a project: the backfill leaves room for
# the project's live traffic
DEFAULT_RATE = 2_000.0
LIMITS = PackingLimits(
    max_batch_bytes=MAX_EVENT_BYTES,
    max_request_bytes=MAX_REQUEST_BYTES,
    max_batches_per_request=MAX_EVENTS_PER_REQUEST,
)
FATAL_STATUSES = {
    401: "Mixpanel refused the credentials (401)",
    403: "Mixpanel refused the credentials (403)",
    404: "the endpoint answered 404 Not Found: check the region setting / --endpoint",
    405: "the endpoint answered 405 Method Not Allowed: check the region setting / --endpoint",
}
REQUEST_REFUSALS = {
    400: ("destination_bad_request", "the destination refused the batch as a bad request"),
    413: ("request_too_big", "a request is over the destination's size or event-count limit"),
}
EVENT_REFUSAL = ("invalid_field", "a field has a value the destination refuses")
MISSING_REFUSAL = ("missing_field", "a required field is missing or empty")


@dataclass(frozen=True)
class MixpanelCredentials:
    """A project token, or a service account (username and secret) with its project id."""

    username: str  # the token, or the service account's username
    secret: str = field(repr=False)  # "" with a token
    project_id: str | None = None

    @property
    def api_key(self) -> str:
        """What the ledger fingerprints: the token, or the account and its project."""
        return self.username if not self.secret else f"{self.username}@{self.project_id}"

    def redact(self, text: str) -> str:
        basic = base64.b64encode(f"{self.username}:{self.secret}".encode()).decode()
        for value in (self.secret, basic, self.username if not self.secret else ""):
            if value:
                text = text.replace(value, "***")
        return text


def load_credentials(
    settings: Settings, env: Mapping[str, str] | None = None
) -> MixpanelCredentials:
    """From the settings and env vars, as the module docstring says."""
    env = os.environ if env is None else env
    secret_file = settings.get("secret_file")
    from_file = None if secret_file is None else read_secret_file(secret_file, "secret_file")
    account = settings.get("service_account") or env.get(ACCOUNT_ENV, "").strip()
    if account:
        secret = from_file or env.get(ACCOUNT_SECRET_ENV, "").strip()
        project = settings.get("project_id")
        if not secret or not project:
            raise ConfigurationError(
                f"a Mixpanel service account needs its secret ({ACCOUNT_SECRET_ENV} or "
                "--destination-option secret_file=PATH) and --destination-option "
                "project_id=ID"
            )
        return MixpanelCredentials(account, secret, project)
    token = from_file or env.get(TOKEN_ENV, "").strip()
    if not token:
        raise ConfigurationError(
            f"set {TOKEN_ENV} (the project token), or a service account ({ACCOUNT_ENV} and "
            f"{ACCOUNT_SECRET_ENV} with --destination-option project_id=ID), or use "
            "--dry-run to see the plan without sending"
        )
    return MixpanelCredentials(token, "")


def endpoint_url(settings: Settings, endpoint: str | None) -> str:
    """`{host}/import?strict=1` (with `project_id` when set), or `endpoint` as given.

    Plain http is refused except to a loopback address (the credentials travel with it).
    """
    if endpoint:
        url = endpoint.rstrip("/")
        if not urlsplit(url).path.endswith(IMPORT_PATH):
            url += IMPORT_PATH
    else:
        region = settings.get("region") or "us"
        url = HOSTS[region] + IMPORT_PATH
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ConfigurationError(f"endpoint {url!r} is not an http(s) URL")
    if parts.username or parts.password or parts.query:
        raise ConfigurationError("the endpoint URL must carry neither credentials nor a query")
    if parts.scheme == "http" and not is_loopback(parts.hostname):
        raise ConfigurationError(
            f"refusing plain http to {parts.hostname}: the credentials would travel "
            "unencrypted. Use https (plain http is allowed to 127.0.0.1/localhost only)."
        )
    project = settings.get("project_id")
    return url + "?strict=1" + (f"&project_id={quote(project, safe='')}" if project else "")


# Packing: one event per ledger batch


PACKING = OneEventPacking(
    NAME.encode(),
    ID_KEY_PREFIX,
    LIMITS.max_batch_bytes,
    lambda size, limit: f"event is {size} bytes, over Mixpanel's {limit + 1}-byte event limit",
)
pack_events = PACKING.pack
assemble_event = PACKING.assemble


def request_json(event_bodies: Iterable[bytes]) -> bytes:
    """A request's events as a JSON array (what a dry run shows: no secret is in it)."""
    return b"[" + b",".join(event_bodies) + b"]"


class MixpanelDestination:
    """The Import Events API at `url` (a region's, or the stand-in's)."""

    def __init__(self, url: str, credentials: MixpanelCredentials) -> None:
        self.url = url
        self.credentials = credentials

    def prepare(self, session: requests.Session) -> None:
        session.auth = (self.credentials.username, self.credentials.secret)
        session.headers.update(
            {
                "Content-Type": "application/json",
                "Content-Encoding": "gzip",
                "User-Agent": "mparticle-backfill-loader",
            }
        )

    def request_body(self, batch_bodies: Iterable[bytes]) -> bytes:
        return gzip.compress(request_json(batch_bodies), compresslevel=6, mtime=0)

    def redact(self, text: str) -> str:
        return self.credentials.redact(text)

    def pace(self, batch_bodies: Iterable[bytes]) -> float:
        return 0.0  # the shared rate is the project's only documented limit

    def classify(self, status: int, headers: Mapping[str, str], body: str) -> Answer:
        return classify(status, headers, body)


def classify(status: int, headers: Mapping[str, str], body: str) -> Answer:
    """What an Import API answer means; see the module docstring."""
    retry_after = {k.lower(): v for k, v in headers.items()}.get("retry-after")
    signals = Signals(retry_after=retry_after)
    if 200 <= status < 300:
        return Answer(Verdict.ACCEPTED, signals=signals)
    parsed = json_answer(body)
    error = answer_error(parsed, body)
    if status == 429:
        return Answer(
            Verdict.RATE_LIMITED,
            f"HTTP 429: {error}",
            wait_s=retry_after_seconds(retry_after),
            slow_down=True,
            signals=signals,
        )
    if status in (400, 413):
        text = f"HTTP {status}: {error}"
        refused = {
            index: Coded(f"{text} ({message})", *_event_code(message))
            for index, message in failed_records(parsed).items()
        }
        return Answer(
            Verdict.SPLIT,
            Coded(text, *REQUEST_REFUSALS[status]),
            signals=signals,
            refused=refused or None,
        )
    if status in FATAL_STATUSES or 300 <= status < 400:
        reason = FATAL_STATUSES.get(status, f"the endpoint redirected ({status})")
        if status in (401, 403):
            reason += f": check {TOKEN_ENV} (or the service account) and the region setting"
        return Answer(Verdict.STOP, reason, signals=signals)
    if status in (408, 425) or status >= 500:
        return Answer(Verdict.RETRY, f"HTTP {status}: {body}", signals=signals)
    return Answer(Verdict.SPLIT, Coded(f"HTTP {status}: {error}", *REQUEST_REFUSALS[400]))


def failed_records(parsed: object) -> dict[int, str]:
    """Index of each event a strict 400 body lists -> its field and message."""
    found: dict[int, str] = {}
    records = parsed.get("failed_records") if isinstance(parsed, dict) else None
    for record in records if isinstance(records, list) else []:
        if not isinstance(record, dict):
            continue
        index = record.get("index")
        if isinstance(index, int) and not isinstance(index, bool) and index >= 0:
            field_name, message = record.get("field"), record.get("message")
            found[index] = f"{field_name}: {message}" if field_name else str(message)
    return found


def _event_code(message: str) -> tuple[str, str]:
    lowered = message.lower()
    return MISSING_REFUSAL if "missing" in lowered or "required" in lowered else EVENT_REFUSAL


SETTINGS = (
    Setting(
        "region",
        "the data residency: us (api.mixpanel.com), eu (api-eu) or in (api-in)",
        choices=tuple(HOSTS),
    ),
    Setting("project_id", "the project id (with a service account)"),
    Setting(
        "service_account",
        f"a service account's username instead of the project token (or {ACCOUNT_ENV})",
    ),
    Setting(
        "secret_file",
        f"a file holding the token or the account's secret (- for stdin) instead of {TOKEN_ENV} "
        f"or {ACCOUNT_SECRET_ENV}",
    ),
    Setting(
        "events_per_request",
        f"events a request (default and at most {MAX_EVENTS_PER_REQUEST})",
        int,
        minimum=1,
        maximum=MAX_EVENTS_PER_REQUEST,
    ),
)


ROUTE = Route(
    name=NAME,
    service="Mixpanel",
    replay_table=REPLAY_TABLE,
    limits=LIMITS,
    default_rate=DEFAULT_RATE,
    validator=None,  # dbt's mixpanel_events decides; a strict 400 names what it refuses
    pack=pack_events,
    assemble=assemble_event,
    dry_run_body=request_json,
    settings=SETTINGS,
    endpoint_url=endpoint_url,
    credentials=load_credentials,
    client=lambda url, credentials, settings: MixpanelDestination(url, credentials),
    batches_per_request="events_per_request",
)
