"""The dashboard's pages as HTML (escape by default, see :mod:`.markup`).

Each ``*_page`` function takes what the node's own stores return (the same dictionaries the
operator API answers with) and gives the ``<main>`` content; :func:`layout` wraps it in the
page frame with the navigation. No function here reads a store: :mod:`.web` does.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping, Sequence
from typing import Any

from privfin.node.dashboard.markup import Markup, h, join

__all__ = ["layout", "login_page", "message_page"]

NAV = (
    ("/", "Overview", "overview"),
    ("/approvals", "Approvals", "approvals"),
    ("/jobs", "Jobs", "jobs"),
    ("/data", "Data", "data"),
    ("/audit", "Audit", "audit"),
    ("/assessments", "Assessments", "assessments"),
)
JOB_STATES = ("running", "done", "failed", "pending", "not started")


def when(ts: float | int | None) -> str:
    """A UTC time as ``YYYY-MM-DD HH:MM:SS UTC`` ("—" for none)."""
    if ts is None:
        return "—"
    return dt.datetime.fromtimestamp(float(ts), dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def ago(ts: float | None, now: float) -> str:
    if ts is None:
        return "no contact since this node started"
    s = max(0, int(now - ts))
    if s < 60:
        return f"{s} s ago"
    if s < 3600:
        return f"{s // 60} min ago"
    return f"{s // 3600} h {s % 3600 // 60} min ago"


def badge(status: str) -> Markup:
    cls = status.split(" ", 1)[0].split("(", 1)[0] or "unknown"
    return h('<span class="badge b-{}">{}</span>', cls, status)


def layout(
    title: str,
    body: Markup,
    *,
    party: str,
    version: str,
    active: str = "",
    csrf: str | None = None,
    pending: int = 0,
    refresh: str | None = None,
) -> Markup:
    """The whole page: head, skip link, navigation, ``<main>`` with ``<h1>``, footer."""
    items = []
    for href, label, key in NAV:
        extra = (
            h(' <span class="count" aria-label="{} waiting">{}</span>', pending, pending)
            if key == "approvals" and pending
            else Markup("")
        )
        current = Markup(' aria-current="page"') if key == active else Markup("")
        items.append(h('<li><a href="{}"{}>{}{}</a></li>', href, current, label, extra))
    logout = (
        h(
            '<form method="post" action="/logout" class="logout">'
            '<input type="hidden" name="csrf" value="{}">'
            '<button type="submit">Log out</button></form>',
            csrf,
        )
        if csrf
        else Markup("")
    )
    nav = h('<nav aria-label="Main"><ul>{}</ul></nav>', join(items)) if csrf else Markup("")
    return h(
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        "<title>{} · privfin node {}</title>"
        '<link rel="stylesheet" href="/static/dashboard.css">'
        '<script src="/static/dashboard.js" defer></script></head>'
        '<body{}><a class="skip" href="#main">Skip to content</a>'
        '<header class="top"><div class="brand">privfin · node <strong>{}</strong></div>'
        "{}{}</header>"
        '<main id="main"><h1>{}</h1>{}</main>'
        "<footer><p>privfin {} · node {} · times in UTC</p></footer></body></html>",
        title,
        party,
        h(' data-refresh="{}"', refresh) if refresh else Markup(""),
        party,
        nav,
        logout,
        title,
        body,
        version,
        party,
    )


def message_page(text: str, *, detail: str = "", back: str = "/") -> Markup:
    """An error or notice in words (never a traceback)."""
    return h(
        '<div class="notice error" role="alert"><p>{}</p>{}</div><p><a href="{}">Back</a></p>',
        text,
        h("<p>{}</p>", detail) if detail else Markup(""),
        back,
    )


def login_page(next_url: str, error: str = "") -> Markup:
    return h(
        "{}"
        '<form method="post" action="/login" class="login">'
        '<input type="hidden" name="next" value="{}">'
        '<p><label for="token">Operator token</label>'
        '<input id="token" name="token" type="password" autocomplete="current-password" '
        'required aria-describedby="token-help"></p>'
        '<p id="token-help" class="help">The token is in <code>operator.token</code> in the '
        "node's state directory (the one <code>privfin job</code> commands use).</p>"
        '<p><button type="submit">Log in</button></p></form>',
        h('<div class="notice error" role="alert"><p>{}</p></div>', error) if error else "",
        next_url,
    )


def table(
    caption: str, headers: Sequence[str], rows: Sequence[Sequence[object]], empty: str
) -> Markup:
    if not rows:
        return h('<p class="empty">{}</p>', empty)
    head = join(h('<th scope="col">{}</th>', c) for c in headers)
    body = join(h("<tr>{}</tr>", join(h("<td>{}</td>", c) for c in r)) for r in rows)
    return h(
        '<div class="table-wrap"><table><caption>{}</caption><thead><tr>{}</tr></thead>'
        "<tbody>{}</tbody></table></div>",
        caption,
        head,
        body,
    )


def dl(items: Sequence[tuple[str, object]]) -> Markup:
    return h('<dl class="facts">{}</dl>', join(h("<dt>{}</dt><dd>{}</dd>", k, v) for k, v in items))


# -- overview


def overview_page(
    me: Mapping[str, Any],
    peers: Sequence[Mapping[str, Any]],
    running: Sequence[Mapping[str, Any]],
    pending: int,
) -> Markup:
    node = dl(
        [
            ("party", me["party"]),
            ("mode", me["mode"]),
            ("privfin version", me["version"]),
            ("federation address", me["federation"]),
            ("operator address", me["operator"]),
            ("certificate", h("<code>{}</code>", me["fingerprint"])),
            ("certificate validity", me["validity"]),
        ]
    )
    peer_rows = [
        (
            h("<strong>{}</strong>", p["party"]),
            p["address"],
            p["transport"],
            h('<code class="fp">{}</code>', p["fingerprint"]),
            p["certificate"],
            badge(p["state"]),
            p["last_contact"],
        )
        for p in peers
    ]
    job_rows = [
        (
            h('<a href="/jobs/{}">{}</a>', j["job"], j["job"]),
            j["kind"],
            ", ".join(j["parties"]),
            h(
                '<progress max="100" value="{}" aria-label="progress of {}">{}%</progress> {}%',
                j["percent"],
                j["job"],
                j["percent"],
                j["percent"],
            ),
            j["step"] or "—",
        )
        for j in running
    ]
    waiting = (
        h(
            '<p class="notice"><a href="/approvals">{} proposal{} waiting for your decision</a>'
            "</p>",
            pending,
            "" if pending == 1 else "s",
        )
        if pending
        else h('<p class="empty">No proposal is waiting for your decision.</p>')
    )
    return h(
        '<section aria-labelledby="h-node"><h2 id="h-node">This node</h2>{}</section>'
        '<section aria-labelledby="h-peers"><h2 id="h-peers">Peers</h2>{}</section>'
        '<section aria-labelledby="h-running"><h2 id="h-running">Running jobs</h2>{}{}</section>',
        node,
        table(
            "Pinned peers, their certificates and when each last reached this node",
            (
                "party",
                "address",
                "transport",
                "certificate fingerprint",
                "certificate",
                "state",
                "last contact",
            ),
            peer_rows,
            "This node has no peers configured.",
        ),
        table(
            "Jobs running at this node",
            ("job", "kind", "parties", "progress", "current step"),
            job_rows,
            "No job is running.",
        ),
        waiting,
    )


# -- approvals


def _uses(view: Mapping[str, Any]) -> Markup:
    uses = view.get("uses") or {}
    facts = dl(
        [
            ("proposed by", view.get("initiator")),
            ("purpose", uses.get("purpose") or "—"),
            (
                "retention",
                "—" if uses.get("retention_days") is None else f"{uses['retention_days']} days",
            ),
            ("results go to", ", ".join(uses.get("results") or []) or "—"),
            ("parties", ", ".join(uses.get("parties") or [])),
            ("technologies", ", ".join(uses.get("technologies") or [])),
            ("spec SHA-256", h("<code>{}</code>", view.get("spec_sha256"))),
        ]
    )
    field_rows = []
    for alias, d in (uses.get("datasets") or {}).items():
        for f, level in (d.get("fields") or {}).items():
            field_rows.append((alias, d.get("dataset"), f, h('<span class="lv">{}</span>', level)))
    fields = table(
        "Exactly which of this party's fields the job would read, with their JR/T 0171 levels",
        ("alias", "dataset", "field", "level"),
        field_rows,
        "The job reads none of this party's datasets.",
    )
    basis_rows = [
        (
            alias,
            d.get("dataset"),
            d.get("legal_basis") or "not recorded",
            ", ".join(d.get("legal_basis_required") or []) or "—",
        )
        for alias, d in (uses.get("datasets") or {}).items()
    ]
    if basis_rows:
        fields = h(
            "{}{}",
            fields,
            table(
                "The legal basis each dataset's usage policy records (written into the audit "
                "with this party's approval), and the bases the job demands",
                ("alias", "dataset", "legal basis", "the job demands"),
                basis_rows,
                "",
            ),
        )
    step_rows = []
    for st in uses.get("steps") or []:
        params = {**(st.get("params") or {}), **(st.get("party_params") or {})}
        step_rows.append(
            (
                st.get("step"),
                st.get("component"),
                "/".join(st.get("roles") or []),
                ", ".join(st.get("parties") or []),
                st.get("reveals") or "—",
                h("<code>{}</code>", json.dumps(params, sort_keys=True)[:300]) if params else "—",
            )
        )
    steps = table(
        "The steps this party takes part in",
        ("step", "component", "role here", "with", "reveals", "parameters"),
        step_rows,
        "This party has no step in the job.",
    )
    decisions = [
        (p, badge(d["decision"]), when(d.get("at")), d.get("reason") or "")
        for p, d in (view.get("decisions") or {}).items()
    ]
    waiting = ", ".join(view.get("waiting_for") or []) or "nobody"
    return h(
        "{}<h3>Fields used</h3>{}<h3>Steps</h3>{}<h3>Decisions</h3>{}<p>Waiting for: {}</p>{}",
        facts,
        fields,
        steps,
        table("Signed decisions", ("party", "decision", "at", "reason"), decisions, "None yet."),
        waiting,
        h('<p class="help">Local note: {}</p>', view["reason"]) if view.get("reason") else "",
    )


def approvals_page(views: Sequence[Mapping[str, Any]], *, show_all: bool, me: str) -> Markup:
    sections = []
    for v in views:
        mine = (v.get("decisions") or {}).get(me)
        actions: Markup = Markup("")
        if v.get("status") == "pending" and mine is None:
            actions = h(
                '<p class="actions"><a class="button approve" href="/approvals/{}/approve">'
                "Approve…</a> "
                '<a class="button reject" href="/approvals/{}/reject">Reject…</a></p>',
                v["job"],
                v["job"],
            )
        elif v.get("status") in ("pending", "approved") and mine is not None:
            actions = h(
                '<p class="actions"><a class="button reject" href="/approvals/{}/revoke">'
                "Revoke…</a></p>",
                v["job"],
            )
        sections.append(
            h(
                '<section class="card proposal" aria-labelledby="p-{}">'
                '<h2 id="p-{}">{} {}</h2>{}{}<p><a href="/jobs/{}">Job page</a></p></section>',
                v["job"],
                v["job"],
                v["job"],
                badge(str(v.get("status"))),
                _uses(v),
                actions,
                v["job"],
            )
        )
    switch = (
        h('<p><a href="/approvals">Show only proposals waiting for a decision</a></p>')
        if show_all
        else h('<p><a href="/approvals?all=1">Show decided proposals too</a></p>')
    )
    empty = h(
        '<p class="empty">{}</p>',
        "No proposals." if show_all else "No proposal is waiting for a decision.",
    )
    return h("{}{}", switch, join(sections) if sections else empty)


def confirm_page(view: Mapping[str, Any], decision: str, csrf: str) -> Markup:
    verb = {"approve": "Approve", "reject": "Reject", "revoke": "Revoke"}[decision]
    consequence = {
        "approve": "Your node signs the approval and sends it to every party; the job starts "
        "when every party has approved it.",
        "reject": "Your node signs the rejection and sends it to every party; the proposal "
        "ends everywhere.",
        "revoke": "Your node signs the revocation; a running job stops at every party (its "
        "state is kept).",
    }[decision]
    return h(
        '<div class="notice" role="note"><p>{} job <strong>{}</strong>? {}</p></div>'
        '<form method="post" action="/approvals/{}/{}" class="confirm">'
        '<input type="hidden" name="csrf" value="{}">'
        '<p><label for="reason">Reason (optional, sent to the other parties)</label>'
        '<textarea id="reason" name="reason" rows="2" maxlength="500"></textarea></p>'
        '<p><button type="submit" class="{}">Confirm: {} {}</button> '
        '<a href="/approvals">Cancel</a></p></form>'
        '<section aria-labelledby="h-what"><h2 id="h-what">What the job would use here</h2>{}'
        "</section>",
        verb,
        view["job"],
        consequence,
        view["job"],
        decision,
        csrf,
        "approve" if decision == "approve" else "reject",
        verb.lower(),
        view["job"],
        _uses(view),
    )


# -- jobs


def jobs_page(
    rows: Sequence[Mapping[str, Any]], *, status: str, q: str, states: Sequence[str]
) -> Markup:
    options = join(
        h(
            '<option value="{}"{}>{}</option>',
            v,
            Markup(" selected") if v == status else "",
            v or "any",
        )
        for v in ("", *states)
    )
    form = h(
        '<form method="get" action="/jobs" class="filters" role="search" aria-label="Filter jobs">'
        '<p><label for="f-status">Status</label><select id="f-status" name="status">{}</select></p>'
        '<p><label for="f-q">Name contains</label>'
        '<input id="f-q" name="q" type="search" value="{}"></p>'
        '<p><button type="submit">Filter</button></p></form>',
        options,
        q,
    )
    body = [
        (
            h('<a href="/jobs/{}">{}</a>', r["job"], r["job"]),
            badge(r["status"]),
            r["kind"],
            ", ".join(r["parties"]),
            when(r.get("updated_at")),
        )
        for r in rows
    ]
    return h(
        "{}{}",
        form,
        table(
            f"{len(rows)} job(s) at this node",
            ("job", "status", "kind", "parties", "last change"),
            body,
            "No job matches.",
        ),
    )


def job_page(
    job: str,
    status: Mapping[str, Any],
    *,
    dag: Markup | None,
    events: Sequence[Mapping[str, Any]],
    plots: Sequence[Any],
    artifacts: Sequence[Mapping[str, Any]],
    proposal: Mapping[str, Any] | None,
    flash: str = "",
) -> Markup:
    prog = status.get("progress") or {}
    percent = float(prog.get("percent", 100.0 if status.get("status") == "done" else 0.0) or 0)
    eta = prog.get("eta_seconds")
    head = h(
        "{}"
        '<section aria-labelledby="h-state" class="card"><h2 id="h-state">State</h2>'
        '<p>Status: <span id="job-status" data-status="{}">{}</span></p>'
        '<p><label for="job-progress">Progress</label> '
        '<progress id="job-progress" max="100" value="{}">{}%</progress> '
        '<span id="job-percent">{}%</span> <span id="job-step">{}</span></p>'
        '<p id="job-error" class="error"{}>{}</p></section>',
        h('<div class="notice" role="status"><p>{}</p></div>', flash) if flash else "",
        status.get("status"),
        badge(str(status.get("status"))),
        round(percent, 1),
        round(percent, 1),
        round(percent, 1),
        (f"step {prog.get('step')}" if prog.get("step") else "")
        + (f", ETA {eta:.0f} s" if isinstance(eta, int | float) else ""),
        Markup("") if status.get("error") else Markup(" hidden"),
        status.get("error") or "",
    )
    steps = status.get("steps") or {}
    graph = (
        h(
            '<section aria-labelledby="h-dag"><h2 id="h-dag">Pipeline</h2>'
            '<div class="dag-wrap">{}</div>{}</section>',
            dag,
            table(
                "This party's steps",
                ("step", "status", "attempt"),
                [
                    (
                        s,
                        h('<span class="step-status" data-step="{}">{}</span>', s, v["status"]),
                        v["attempt"],
                    )
                    for s, v in steps.items()
                ],
                "This party has no step.",
            ),
        )
        if dag is not None
        else Markup("")
    )
    figures = join(
        h(
            '<figure class="plot-fig" id="plot-{}-{}-{}">{}<figcaption>{} (step {}) · '
            '<a href="/jobs/{}/plots/{}.svg">Open {} (SVG)</a></figcaption></figure>',
            p.step,
            p.output,
            p.kind,
            p.svg,
            p.title,
            p.step,
            job,
            p.key,
            p.title,
        )
        for p in plots
    )
    results = h(
        '<section aria-labelledby="h-results"><h2 id="h-results">Results</h2>{}{}</section>',
        h('<div class="plots">{}</div>', figures)
        if plots
        else h('<p class="empty">No plots (yet) for this job at this node.</p>'),
        table(
            "This party's output files (fetch them with privfin job results)",
            ("step", "output", "kind", "size (bytes)", "SHA-256"),
            [
                (
                    a["step"],
                    a["name"],
                    a["kind"],
                    a["size"],
                    h("<code>{}</code>", a["sha256"][:16] + "…"),
                )
                for a in artifacts
            ],
            "No output files at this node.",
        ),
    )
    log_rows = [
        (
            when(e["time"]),
            e["action"],
            e["actor"],
            e.get("step") or "",
            e.get("dataset") or "",
            e.get("party") or "",
        )
        for e in events
    ]
    logs = h(
        '<section aria-labelledby="h-logs"><h2 id="h-logs">Log</h2>{}</section>',
        table(
            "The job's events at this node (from the audit log)",
            ("time", "event", "actor", "step", "dataset", "party"),
            log_rows,
            "No events.",
        ),
    )
    prop = (
        h(
            '<section aria-labelledby="h-prop"><h2 id="h-prop">Proposal</h2>'
            "<details><summary>What the job uses at this node</summary>{}</details></section>",
            _uses(proposal),
        )
        if proposal
        else Markup("")
    )
    return h("{}{}{}{}{}", head, graph, results, logs, prop)


# -- data


def data_page(datasets: Sequence[Mapping[str, Any]], dp: Mapping[str, Mapping[str, Any]]) -> Markup:
    rows = []
    for d in datasets:
        b = dp[d["name"]]
        budget = b.get("budget")
        remaining = (
            f"ε {budget['remaining_epsilon']:.4g} of {budget['epsilon']:.4g}"
            if budget
            else "no budget set"
        )
        levels = sorted({f["level"] for f in d["fields"]})
        rows.append(
            (
                h('<a href="/data/{}">{}</a>', d["name"], d["name"]),
                d["kind"],
                f"{d['rows']:,}",
                len(d["fields"]),
                ", ".join(levels),
                ", ".join(d["policy"].get("partners") or []) or "none",
                ", ".join(d["policy"].get("purposes") or []) or "none",
                remaining,
            )
        )
    return table(
        "Datasets registered with this node",
        ("dataset", "source", "rows", "fields", "levels", "partners", "purposes", "DP budget left"),
        rows,
        "No dataset is registered (privfin data register).",
    )


def dataset_page(d: Mapping[str, Any], dp: Mapping[str, Any], plot: Markup | None) -> Markup:
    policy = d.get("policy") or {}
    facts = dl(
        [
            ("version", d.get("version")),
            ("source", f"{d.get('kind')} {d.get('location')}"),
            ("rows", f"{d.get('rows'):,}"),
            ("SHA-256", h("<code>{}</code>", d.get("digest"))),
            ("registered", d.get("registered_at")),
            ("id column", d.get("id_column") or "—"),
            ("label", d.get("label") or "—"),
            ("partners", ", ".join(policy.get("partners") or []) or "none: no job may use it"),
            ("purposes", ", ".join(policy.get("purposes") or []) or "none: no job may use it"),
            ("legal basis", policy.get("legal_basis") or "not recorded"),
            ("origin", d.get("origin")),
        ]
    )
    fields = table(
        "Schema with JR/T 0171 sensitivity levels",
        ("field", "type", "level", "role"),
        [
            (
                f["name"],
                f["dtype"],
                h('<span class="lv">{}</span>', f["level"]),
                "id"
                if f["name"] == d.get("id_column")
                else "label"
                if f["name"] == d.get("label")
                else "",
            )
            for f in d.get("fields") or []
        ],
        "No fields.",
    )
    budget = dp.get("budget")
    dp_facts = dl(
        [
            (
                "budget",
                "not set (DP releases are refused)"
                if budget is None
                else f"ε {budget['epsilon']:.6g}, δ {budget['delta']:.3g}",
            ),
            ("spent", f"ε {dp['spent_epsilon']:.6g}, δ {dp['spent_delta']:.3g}"),
            (
                "remaining",
                "—"
                if budget is None
                else f"ε {budget['remaining_epsilon']:.6g}, δ {budget['remaining_delta']:.3g}",
            ),
            ("releases charged", dp.get("releases")),
        ]
    )
    spends = table(
        "Latest spends (the ledger)",
        ("job", "step", "party", "mechanism", "ε", "δ", "state", "reserved"),
        [
            (
                s["job"],
                s.get("step") or "",
                s["party"],
                s["mechanism"],
                f"{s['epsilon']:.4g}",
                f"{s['delta']:.3g}",
                s["state"],
                when(s.get("reserved_at")),
            )
            for s in reversed(dp.get("spends") or [])
        ],
        "Nothing spent.",
    )
    return h(
        '<section aria-labelledby="h-facts"><h2 id="h-facts">Dataset</h2>{}</section>'
        '<section aria-labelledby="h-schema"><h2 id="h-schema">Schema</h2>{}</section>'
        '<section aria-labelledby="h-dp"><h2 id="h-dp">Differential-privacy budget</h2>{}{}{}'
        "</section>",
        facts,
        fields,
        dp_facts,
        h('<figure class="plot-fig">{}</figure>', plot) if plot is not None else "",
        spends,
    )


# -- audit


def audit_page(
    entries: Sequence[Any],
    *,
    total: int,
    shown_from: int,
    q: str,
    job: str,
    action: str,
    actions: Sequence[str],
    csrf: str,
    verdict: Mapping[str, Any] | None,
    next_url: str | None,
    prev_url: str | None,
) -> Markup:
    result = Markup("")
    if verdict is not None:
        result = h(
            '<div id="verify-result" class="notice {}" role="status"><p><strong>{}</strong> {}</p>'
            "</div>",
            "ok" if verdict["ok"] else "error",
            "Chain verified:" if verdict["ok"] else "Chain verification FAILED:",
            verdict["summary"],
        )
    options = join(
        h(
            '<option value="{}"{}>{}</option>',
            v,
            Markup(" selected") if v == action else "",
            v or "any",
        )
        for v in ("", *actions)
    )
    form = h(
        '<form method="get" action="/audit" class="filters" role="search" '
        'aria-label="Search the audit log">'
        '<p><label for="a-q">Text</label><input id="a-q" name="q" type="search" value="{}"></p>'
        '<p><label for="a-job">Job</label><input id="a-job" name="job" value="{}"></p>'
        '<p><label for="a-action">Event</label><select id="a-action" name="action">{}</select></p>'
        '<p><button type="submit">Search</button></p></form>'
        '<form method="post" action="/audit/verify" class="verify">'
        '<input type="hidden" name="csrf" value="{}">'
        '<button type="submit" id="verify-chain">Verify chain</button></form>',
        q,
        job,
        options,
        csrf,
    )
    rows = [
        (
            e.seq,
            when(e.ts / 1e6),
            e.actor,
            e.action,
            h('<a href="/jobs/{}">{}</a>', e.job, e.job) if e.job else "",
            e.step or "",
            e.dataset or "",
            e.party or "",
            h("<code>{}</code>", json.dumps(e.evidence, sort_keys=True)[:240]),
            h('<code title="{}">{}…</code>', e.hash, e.hash[:12]),
        )
        for e in entries
    ]
    pager = join(
        [
            h('<a href="{}">Newer</a>', prev_url) if prev_url else "",
            h('<a href="{}">Older</a>', next_url) if next_url else "",
        ],
        " ",
    )
    return h(
        "{}{}{}<p>{}</p>",
        result,
        form,
        table(
            f"{total} matching entr{'y' if total == 1 else 'ies'}, newest first"
            + (f" (from #{shown_from})" if rows else ""),
            (
                "seq",
                "time",
                "actor",
                "event",
                "job",
                "step",
                "dataset",
                "party",
                "evidence",
                "hash",
            ),
            rows,
            "No entry matches.",
        ),
        pager,
    )
