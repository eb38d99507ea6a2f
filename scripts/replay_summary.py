"""Print what the replay set holds and why blocked events were skipped."""

import sys

import duckdb

con = duckdb.connect(sys.argv[1], read_only=True)
queries = {
    "Blocked events by outcome": """
        select outcome, coalesce(skip_reason, '') as reason, count(*) as events
        from blocked_events__outcomes group by all order by events desc""",
    "Replay set by event": """
        select event_type, event_name, count(*) as events, count(distinct user_key) as users,
               list_distinct(flatten(list(fixes_applied))) as fixes
        from replay_events group by all order by events desc""",
}
for title, sql in queries.items():
    print(f"\n{title}:")
    con.sql(sql).show(max_width=120)
