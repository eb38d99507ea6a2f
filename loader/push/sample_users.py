"""The users of a sample run (a test send): named by hand, then picked greedily.

Greedy set cover over the (event type, event name) pairs still to send: each step takes
the user whose events add the most pairs not covered yet; ties go to the smallest
`user_key` (byte order), so the same replay set and ledger always give the same users.
Once every pair is covered, further users are taken in `user_key` order. Greedy is not
always optimal, but it covers at least 63% of what the best choice of N users would.

Works in the planner's scratch database `s`: reads `s.skip_keys` and `s.disposition`,
writes `s.pending` (rows still to send, with their pair), `s.sample_users` and `s.covered`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import duckdb
import orjson

from loader.errors import LoaderError


@dataclass(frozen=True)
class SampleRequest:
    """A test send: `users` users in all, starting with `user_keys` (picked by hand)."""

    users: int = 0
    user_keys: tuple[str, ...] = ()


@dataclass
class SampleCoverage:
    users: list[str]  # in the order picked
    pairs_covered: int
    pairs_total: int  # distinct (event type, event name) pairs among the events still to send
    pending_events: int  # events a full run would send (new and resumed)


def pick_sample(
    con: duckdb.DuckDBPyConnection, replay: str, s: str, request: SampleRequest
) -> None:
    """Fill `s.sample_users` for `request`."""
    con.execute(
        f"""create table {s}.pending as
        select
            user_key,
            event_type || chr(10) || coalesce(event_json->>'$.data.event_name', '') as pair,
        from {replay}
        where replay_key not in (select replay_key from {s}.skip_keys)
            or replay_key in (select replay_key from {s}.disposition where disposition = 'resume')
        """
    )
    con.execute(f"create table {s}.user_pairs as select distinct user_key, pair from {s}.pending")
    con.execute(f"create table {s}.sample_users (user_key varchar primary key, position integer)")
    con.execute(f"create table {s}.covered (pair varchar primary key)")
    _check_known(con, replay, request.user_keys)
    for key in dict.fromkeys(request.user_keys):
        _take(con, s, key)
    for _ in range(request.users - len(set(request.user_keys))):
        row = con.execute(
            f"""select p.user_key, count(*) filter (where c.pair is null) as gain,
            from {s}.user_pairs p
            left join {s}.covered c using (pair)
            where p.user_key not in (select user_key from {s}.sample_users)
            group by p.user_key
            order by gain desc, p.user_key
            limit 1"""
        ).fetchone()
        if row is None:
            break  # every user with events to send is in the sample
        _take(con, s, row[0])


def _check_known(con: duckdb.DuckDBPyConnection, replay: str, user_keys: tuple[str, ...]) -> None:
    if not user_keys:
        return
    known = {
        row[0]
        for row in con.execute(
            f"select distinct user_key from {replay} where user_key in (select unnest(?))",
            [list(user_keys)],
        ).fetchall()
    }
    unknown = [key for key in user_keys if key not in known]
    if unknown:
        raise LoaderError(
            f"--user-key {unknown[0]!r}: no replay event has this user_key. Pick users from "
            'replay_events.user_key (e.g. `loader sql "select distinct user_key from '
            'replay_events limit 20"`).'
        )


def _take(con: duckdb.DuckDBPyConnection, s: str, user_key: str) -> None:
    con.execute(
        f"insert into {s}.sample_users "
        f"select ?, (select count(*) from {s}.sample_users) on conflict do nothing",
        [user_key],
    )
    con.execute(
        f"insert into {s}.covered select distinct pair from {s}.user_pairs where user_key = ? "
        "on conflict do nothing",
        [user_key],
    )


def sample_coverage(con: duckdb.DuckDBPyConnection, s: str) -> SampleCoverage:
    users = [
        row[0]
        for row in con.execute(
            f"select user_key from {s}.sample_users order by position"
        ).fetchall()
    ]
    [(covered, total, pending)] = con.execute(
        f"""select
            count(distinct pair) filter (where user_key in (select user_key from {s}.sample_users)),
            count(distinct pair),
            count(*),
        from {s}.pending"""
    ).fetchall()
    return SampleCoverage(users, covered, total, pending)


DEVICE_ID_SUFFIXES = ("_id", "_idfv", "_uuid")


def sample_identities(con: duckdb.DuckDBPyConnection, replay: str, s: str) -> list[str]:
    """How to find each sample user (in the order picked) in mParticle's Live Stream: the
    MPID, else the customer id or another identity the batches carry, beside the user_key
    (which `--user-key` takes); a user_key that is already the MPID stands alone."""
    rows = con.execute(
        f"""select u.user_key, arg_min(r.batch_context::varchar, r.replay_key)
        from {s}.sample_users u
        left join {replay} r using (user_key)
        group by u.user_key, u.position
        order by u.position"""
    ).fetchall()
    return [findable_as(key, orjson.loads(context) if context else {}) for key, context in rows]


def findable_as(user_key: str, context: dict[str, Any]) -> str:
    """`user_key` named by an identity from its batch `context` a person can look up."""
    if context.get("mpid") is not None:
        found = f"MPID {context['mpid']}"  # an exact int64: orjson reads it as an int
        return found if user_key == f"mpid:{context['mpid']}" else f"{found} ({user_key})"
    for source in ("user_identities", "device_info"):
        identities = context.get(source) or {}
        if not isinstance(identities, dict):
            continue
        names = sorted(n for n, v in identities.items() if v is not None and v != "")
        if source == "device_info":  # its ids, not its brand or platform
            names = [n for n in names if n.endswith(DEVICE_ID_SUFFIXES)]
        if source == "user_identities" and "customer_id" in names:
            names.remove("customer_id")
            names.insert(0, "customer_id")
        if names:
            return f"{names[0]} {identities[names[0]]} ({user_key})"
    return user_key
