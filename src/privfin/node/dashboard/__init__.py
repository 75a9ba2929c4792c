"""The node's dashboard: server-rendered pages on the operator port, at ``/``.

Overview (this party, peers, running jobs), approvals inbox, jobs (DAG, live status, logs,
result plots), data (schemas, levels, policy, DP budget) and the audit log with a chain check.
A browser logs in with the operator token and gets a session cookie; see docs/dashboard.md.
Works offline: the CSS and the small script are in ``static/`` (written for privfin), plots
are SVG drawn by :mod:`.plots`.
"""

from privfin.node.dashboard.web import mount_dashboard

__all__ = ["mount_dashboard"]
