"""`loader report`: one self-contained HTML page about a backfill, for a data lead.

Before a push it shows what would be sent and what could go wrong (age, skipped events,
fixes, identity risk, user attributes, the data plan); after a push, what the ledger
recorded. Charts are inline SVG (loader.audit.charts): no scripts, no network, works offline.
The warehouse and the ledger are opened read-only.

Modules: `document` puts the page together (headline, warnings) and writes it; `html` holds
the page's building blocks and style; `replay_set` and `push` the sections before and after
a push; `reading` the warehouse queries they share.
"""

from loader.audit.report.document import ReportError, ReportSummary, render, write_report

__all__ = ["ReportError", "ReportSummary", "render", "write_report"]
