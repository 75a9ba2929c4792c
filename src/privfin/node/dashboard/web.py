"""The dashboard's routes on the operator app (see :func:`mount_dashboard`).

Every page reads the same sources as the operator API and the CLI: the job runner's status
and job list, the negotiator's inbox and decisions, the dataset registry, the DP budget
ledger, the pipeline store's artifacts and the audit log (:func:`~privfin.node.operator.
job_events`, :func:`~privfin.node.operator.verify_audit`).
"""

from __future__ import annotations

import hmac
import json
import logging
import time
from importlib import resources
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from fastapi import FastAPI, HTTPException, Request
from fastapi.exception_handlers import (
    http_exception_handler,
    request_validation_exception_handler,
)
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from privfin import __version__
from privfin.audit import Action
from privfin.errors import ConfigError
from privfin.federation.tls import fingerprint, validity_problem
from privfin.federation.transport import validate_name
from privfin.jobs.spec import PipelineSpec
from privfin.node.config import NodeConfig
from privfin.node.dashboard import pages, plots
from privfin.node.dashboard.auth import COOKIE, SESSION_SECONDS, Session, Sessions
from privfin.node.dashboard.markup import Markup
from privfin.node.dashboard.results import job_plots
from privfin.node.logs import LogLimiter
from privfin.node.runner import JobRunner

__all__ = ["mount_dashboard"]

_log = logging.getLogger("privfin.node.dashboard")
#: Paths of the JSON operator API: errors there stay JSON.
API_PREFIXES = ("/v1/", "/health", "/openapi.json", "/docs", "/redoc")
PAGE_SIZE = 100
MAX_FORM = 16 * 1024
STATIC = {"dashboard.css": "text/css", "dashboard.js": "text/javascript"}
HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; "
    "img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; "
    "base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}


class _LoginNeeded(Exception):
    def __init__(self, next_url: str) -> None:
        self.next_url = next_url


def _is_api(path: str) -> bool:
    return any(path == p.rstrip("/") or path.startswith(p) for p in API_PREFIXES)


def _safe_next(url: str | None) -> str:
    """Only a path on this site (no scheme, no host, no ``//``)."""
    if not url or not url.startswith("/") or url.startswith("//") or "\\" in url:
        return "/"
    parts = urlsplit(url)
    return "/" if parts.scheme or parts.netloc else url


def mount_dashboard(api: FastAPI, config: NodeConfig, runner: JobRunner) -> None:
    """Add the dashboard's pages to the operator app ``api`` (served at ``/``)."""
    sessions = Sessions()
    limiter = LogLimiter(_log)
    api.state.dashboard_sessions = sessions
    secure = bool(config.operator.tls)

    def page(
        title: str,
        body: Markup,
        session: Session | None,
        *,
        active: str = "",
        status: int = 200,
        refresh: str | None = None,
    ) -> HTMLResponse:
        pending = 0
        if session is not None:
            try:
                pending = len(runner.negotiator.inbox("pending"))
            except Exception:  # the count is a convenience: never fail a page for it
                _log.exception("cannot count pending proposals")
        html = pages.layout(
            title,
            body,
            party=config.party,
            version=__version__,
            active=active,
            csrf=session.csrf if session else None,
            pending=pending,
            refresh=refresh,
        )
        return HTMLResponse(html, status_code=status, headers=HEADERS)

    def session_of(request: Request) -> Session | None:
        return sessions.get(request.cookies.get(COOKIE))

    def require(request: Request) -> Session:
        s = session_of(request)
        if s is None:
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            raise _LoginNeeded(target)
        return s

    def same_origin(request: Request) -> None:
        """A POST from a page of another site is refused (with SameSite=Strict cookies and
        the CSRF token this is a third line)."""
        origin = request.headers.get("origin")
        if origin and origin != "null" and urlsplit(origin).netloc != request.headers.get("host"):
            raise HTTPException(403, "the form was sent from another site")

    async def form(request: Request) -> dict[str, str]:
        """An ``application/x-www-form-urlencoded`` body (the only kind the pages send),
        at most :data:`MAX_FORM` bytes; the first value of each field."""
        cached = request.scope.get("privfin.form")
        if cached is not None:
            return dict(cached)
        length = request.headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > MAX_FORM):
            raise HTTPException(413, "the form is too large")
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_FORM:
                raise HTTPException(413, "the form is too large")
        kind = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
        if body and kind != "application/x-www-form-urlencoded":
            raise HTTPException(415, "the form must be sent as a web form")
        try:
            fields = parse_qs(body.decode("utf-8"), max_num_fields=20, strict_parsing=False)
        except (UnicodeDecodeError, ValueError):
            raise HTTPException(400, "the form could not be read") from None
        data = {k: v[0] for k, v in fields.items() if v}
        request.scope["privfin.form"] = data
        return dict(data)

    async def checked_post(request: Request) -> tuple[Session, dict[str, str]]:
        session = require(request)
        same_origin(request)
        data = await form(request)
        if not session.csrf_ok(data.get("csrf")):
            raise HTTPException(403, "the form has expired or was not sent from this dashboard")
        return session, data

    def name(kind: str, value: str) -> str:
        try:
            return validate_name(kind, value)
        except ValueError as exc:
            raise HTTPException(400, str(exc)) from None

    # -- errors: words on dashboard pages, the API's JSON elsewhere
    @api.exception_handler(_LoginNeeded)
    async def login_needed(request: Request, exc: _LoginNeeded) -> Response:
        if request.url.path.endswith(".json"):
            return JSONResponse({"detail": "log in first"}, status_code=401, headers=HEADERS)
        return RedirectResponse("/login?" + urlencode({"next": exc.next_url}), status_code=303)

    @api.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if _is_api(request.url.path) or request.url.path.endswith(".json"):
            return await http_exception_handler(request, exc)
        words = {404: "Not found.", 403: "Refused.", 401: "Log in first.", 405: "Not allowed."}
        detail = exc.detail if isinstance(exc.detail, str) else ""
        title = words.get(exc.status_code, "The request could not be served.")
        s = session_of(request)
        return page(
            "Error",
            pages.message_page(title, detail=detail if detail != title[:-1] else ""),
            s,
            status=exc.status_code,
        )

    @api.exception_handler(RequestValidationError)
    async def bad_request(request: Request, exc: RequestValidationError) -> Response:
        if _is_api(request.url.path):
            return await request_validation_exception_handler(request, exc)
        return page(
            "Error",
            pages.message_page("The request was malformed."),
            session_of(request),
            status=400,
        )

    @api.exception_handler(Exception)
    async def internal(request: Request, exc: Exception) -> Response:
        _log.error("dashboard/operator request %s failed", request.url.path, exc_info=exc)
        if _is_api(request.url.path) or request.url.path.endswith(".json"):
            return JSONResponse({"detail": "internal error (see the node's log)"}, 500)
        return HTMLResponse(
            pages.layout(
                "Error",
                pages.message_page("Something went wrong on the node; the details are in its log."),
                party=config.party,
                version=__version__,
            ),
            status_code=500,
            headers=HEADERS,
        )

    # -- static files and login
    @api.get("/static/{file}", include_in_schema=False)
    def static(file: str) -> Response:
        if file not in STATIC:
            raise HTTPException(404, "no such file")
        body = resources.files("privfin.node.dashboard").joinpath("static", file).read_bytes()
        return Response(
            body,
            media_type=STATIC[file],
            headers={**HEADERS, "Cache-Control": "max-age=300"},
        )

    @api.get("/login", include_in_schema=False)
    def login_form(request: Request, next: str = "/") -> Response:
        return page("Log in", pages.login_page(_safe_next(next)), None)

    @api.post("/login", include_in_schema=False)
    async def login(request: Request) -> Response:
        same_origin(request)
        data = await form(request)
        target = _safe_next(data.get("next"))
        token: str = api.state.token
        given = data.get("token", "").strip()
        if not hmac.compare_digest(given.encode(), token.encode()):
            # (rate-limited: anyone who reaches the port could flood the log)
            limiter.log(
                logging.WARNING,
                "?",
                "dashboard-login",
                "dashboard: a login with a wrong operator token was refused",
            )
            return page(
                "Log in",
                pages.login_page(target, "That is not this node's operator token."),
                None,
                status=401,
            )
        s = sessions.create()
        resp = RedirectResponse(target, status_code=303)
        resp.set_cookie(
            COOKIE,
            s.id,
            max_age=SESSION_SECONDS,
            httponly=True,
            samesite="strict",
            secure=secure,
            path="/",
        )
        return resp

    @api.post("/logout", include_in_schema=False)
    async def logout(request: Request) -> Response:
        session, _ = await checked_post(request)
        sessions.end(session.id)
        resp = RedirectResponse("/login", status_code=303)
        resp.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict", secure=secure)
        return resp

    # -- overview
    def peer_rows() -> list[dict[str, Any]]:
        now = time.time()
        certs = config.peer_certs()
        stream = config.stream_peers()
        out = []
        for party, peer in sorted(config.peers.items()):
            pem = certs.get(party)
            problem = validity_problem(pem) if pem else "missing"
            last = runner.contacts.last(party)
            if problem:
                state = "certificate problem"
            elif last is None:
                state = "not seen yet"
            elif now - last < 300:
                state = "in contact"
            else:
                state = "quiet"
            out.append(
                {
                    "party": party,
                    "address": peer.url,
                    "transport": "stream" if party in stream else "https",
                    "fingerprint": fingerprint(pem) if pem else "—",
                    "certificate": f"certificate {problem}" if problem else "valid",
                    "state": state,
                    "last_contact": pages.ago(last, now)
                    + ("" if last is None else f" ({pages.when(last)})"),
                }
            )
        return out

    def running_jobs() -> list[dict[str, Any]]:
        out = []
        for j in runner.jobs("running"):
            st = runner.status(j["job"]) or {}
            prog = st.get("progress") or {}
            out.append(
                {
                    **j,
                    "percent": round(float(prog.get("percent", 0) or 0), 1),
                    "step": prog.get("step"),
                }
            )
        return out

    @api.get("/", include_in_schema=False)
    def overview(request: Request) -> Response:
        s = require(request)
        own = config.cert.read_bytes()
        problem = validity_problem(own)
        me = {
            "party": config.party,
            "mode": config.mode,
            "version": __version__,
            "federation": f"https://{config.host}:{config.port}"
            + (f" (stream port {config.stream_port})" if config.stream_port else ""),
            "operator": config.operator_url(),
            "fingerprint": fingerprint(own),
            "validity": f"certificate {problem}" if problem else "valid",
        }
        body = pages.overview_page(
            me, peer_rows(), running_jobs(), len(runner.negotiator.inbox("pending"))
        )
        return page("Overview", body, s, active="overview", refresh="/")

    # -- approvals
    @api.get("/approvals", include_in_schema=False)
    def approvals(request: Request, all: str = "") -> Response:
        s = require(request)
        views = runner.negotiator.inbox(None if all else "pending")
        body = pages.approvals_page(views, show_all=bool(all), me=config.party)
        return page("Approvals", body, s, active="approvals")

    def proposal_view(job: str) -> dict[str, Any]:
        try:
            return runner.negotiator.view(name("job", job))
        except ConfigError:
            raise HTTPException(404, f"there is no proposal {job!r} at this node") from None

    @api.get("/approvals/{job}/{decision}", include_in_schema=False)
    def confirm(request: Request, job: str, decision: str) -> Response:
        s = require(request)
        if decision not in ("approve", "reject", "revoke"):
            raise HTTPException(404, "a decision is approve, reject or revoke")
        view = proposal_view(job)
        verb = {"approve": "Approve", "reject": "Reject", "revoke": "Revoke"}[decision]
        return page(
            f"{verb} {job}?",
            pages.confirm_page(view, decision, s.csrf),
            s,
            active="approvals",
        )

    @api.post("/approvals/{job}/{decision}", include_in_schema=False)
    async def decide(request: Request, job: str, decision: str) -> Response:
        _, data = await checked_post(request)
        if decision not in ("approve", "reject", "revoke"):
            raise HTTPException(404, "a decision is approve, reject or revoke")
        job = name("job", job)
        reason = data.get("reason", "")[:500]
        try:
            await run_in_threadpool(runner.negotiator.decide, job, decision, reason)
        except ConfigError as exc:
            raise HTTPException(409, str(exc)) from None
        done = {"approve": "approved", "reject": "rejected", "revoke": "revoked"}[decision]
        return RedirectResponse(f"/jobs/{job}?" + urlencode({"decided": done}), status_code=303)

    # -- jobs
    def all_jobs() -> list[dict[str, Any]]:
        rows = runner.jobs()
        started = {r["job"] for r in rows}
        for v in runner.negotiator.inbox(None):
            if v["job"] not in started:
                uses = v.get("uses") or {}
                rows.append(
                    {
                        "job": v["job"],
                        "status": "not started",
                        "kind": f"pipeline (proposal {v.get('status')})",
                        "parties": list(uses.get("parties") or []),
                        "updated_at": None,
                    }
                )
        return rows

    @api.get("/jobs", include_in_schema=False)
    def jobs(request: Request, status: str = "", q: str = "") -> Response:
        s = require(request)
        rows = [
            r
            for r in all_jobs()
            if (not status or r["status"] == status) and (not q or q.lower() in r["job"].lower())
        ]
        body = pages.jobs_page(rows, status=status, q=q, states=pages.JOB_STATES)
        return page("Jobs", body, s, active="jobs")

    def job_state(job: str) -> dict[str, Any]:
        st = runner.status(job)
        if st is not None:
            return st
        try:
            view = runner.negotiator.view(job)
        except ConfigError:
            raise HTTPException(404, f"no job or proposal {job!r} at this node") from None
        waiting = ", ".join(view.get("waiting_for") or []) or "nobody"
        state = view["status"]
        if state in ("rejected", "revoked"):
            return {"job": job, "status": "failed", "error": f"proposal {state}"}
        return {"job": job, "status": f"not started ({state}; waiting for: {waiting})"}

    @api.get("/jobs/{job}", include_in_schema=False)
    def job_page(request: Request, job: str, decided: str = "") -> Response:
        s = require(request)
        job = name("job", job)
        status = job_state(job)
        spec = runner.spec(job) or runner.negotiator.spec(job)
        dag = None
        proposal = None
        if isinstance(spec, PipelineSpec):
            order = spec.order()
            dag = plots.dag_svg(
                order,
                {st: spec.dependencies(st) for st in order},
                {st: spec.steps[st].component for st in order},
                {k: v["status"] for k, v in (status.get("steps") or {}).items()},
                set(spec.steps_of(config.party)),
            )
        try:
            proposal = runner.negotiator.view(job)
        except ConfigError:
            proposal = None
        from privfin.node.operator import job_events

        events = (job_events(runner, job) or {}).get("events", [])
        flash = ""
        verbs = {"approved": "approve", "rejected": "reject", "revoked": "revoke"}
        mine = ((proposal or {}).get("decisions") or {}).get(config.party) or {}
        if decided in verbs and mine.get("decision") == verbs[decided]:  # (not a crafted link)
            flash = f"You {decided} job {job}; your signed decision is sent to every party."
        body = pages.job_page(
            job,
            status,
            dag=dag,
            events=events,
            plots=job_plots(runner, job) if runner.knows(job) else [],
            artifacts=[a.as_dict() for a in runner.pipelines.artifacts(job)],
            proposal=proposal,
            flash=flash,
        )
        live = str(status.get("status")) not in ("done", "failed")
        return page(
            f"Job {job}",
            body,
            s,
            active="jobs",
            refresh=f"/jobs/{job}/state.json" if live else None,
        )

    @api.get("/jobs/{job}/state.json", include_in_schema=False)
    def job_state_json(request: Request, job: str) -> Response:
        require(request)
        st = job_state(name("job", job))
        return JSONResponse(
            {
                "status": st.get("status"),
                "progress": st.get("progress") or {},
                "steps": st.get("steps") or {},
                "error": st.get("error"),
            },
            headers=HEADERS,
        )

    @api.get("/jobs/{job}/plots/{step}/{output}/{kind}.svg", include_in_schema=False)
    def job_plot(request: Request, job: str, step: str, output: str, kind: str) -> Response:
        require(request)
        job = name("job", job)
        for p in job_plots(runner, job) if runner.knows(job) else []:
            if (p.step, p.output, p.kind) == (step, output, kind):
                return Response(
                    '<?xml version="1.0" encoding="UTF-8"?>\n' + p.svg,
                    media_type="image/svg+xml",
                    headers=HEADERS,
                )
        raise HTTPException(404, f"job {job!r} has no such plot at this node")

    # -- data
    @api.get("/data", include_in_schema=False)
    def data(request: Request) -> Response:
        s = require(request)
        datasets = [d.public() for d in runner.registry.list()]
        dp = {d["name"]: runner.dp_ledger.status(d["name"], last=0) for d in datasets}
        return page("Data", pages.data_page(datasets, dp), s, active="data")

    @api.get("/data/{dataset}", include_in_schema=False)
    def dataset(request: Request, dataset: str) -> Response:
        s = require(request)
        try:
            info = runner.registry.get(name("dataset", dataset)).public()
        except ConfigError:
            raise HTTPException(404, f"no dataset {dataset!r} is registered here") from None
        dp = runner.dp_ledger.status(info["name"])
        budget = dp.get("budget")
        plot = (
            plots.dp_budget_svg(
                {info["name"]: (dp["spent_epsilon"], budget["epsilon"] if budget else None)}
            )
            if budget or dp["spent_epsilon"]
            else None
        )
        return page(f"Dataset {info['name']}", pages.dataset_page(info, dp, plot), s, active="data")

    # -- assessments
    @api.get("/assessments", include_in_schema=False)
    def assessments(request: Request) -> Response:
        s = require(request)
        from privfin.node.dashboard import assessments as am

        rows = am.list_reports(config.state_dir)
        return page("Assessments", am.assessments_page(rows), s, active="assessments")

    @api.get("/assessments/{report}", include_in_schema=False)
    def assessment(request: Request, report: str) -> Response:
        s = require(request)
        from privfin.assess.report import load_report
        from privfin.node.dashboard import assessments as am

        d = am.report_dir(config.state_dir, report)
        if d is None:
            raise HTTPException(404, f"no assessment report {report!r} is stored here")
        try:
            loaded = load_report(d / "report.json")
        except (OSError, ValueError, KeyError, TypeError):
            raise HTTPException(404, f"assessment report {report!r} cannot be read") from None
        return page(
            f"Assessment {report}", am.assessment_page(report, loaded), s, active="assessments"
        )

    @api.get("/assessments/{report}/{file}", include_in_schema=False)
    def assessment_file(request: Request, report: str, file: str) -> Response:
        require(request)
        from privfin.node.dashboard import assessments as am

        d = am.report_dir(config.state_dir, report)
        kinds = {"report.json": "application/json", "report.html": "text/html"}
        if d is None or file not in kinds or not (d / file).is_file():
            raise HTTPException(404, "no such report file")
        return Response(
            (d / file).read_bytes(),
            media_type=kinds[file],
            headers={
                **HEADERS,
                "Content-Disposition": f'attachment; filename="{report}-{file}"',
            },
        )

    # -- audit
    def audit_view(
        request: Request, s: Session, verdict: dict[str, Any] | None, params: dict[str, str]
    ) -> Response:
        q = params.get("q", "").strip()[:200]
        job = params.get("job", "").strip()[:64] or None
        action = params.get("action", "")
        try:
            before = int(params.get("before", "0") or 0)
        except ValueError:
            raise HTTPException(400, "'before' must be a sequence number") from None
        base = {k: v for k, v in (("q", q), ("job", job or ""), ("action", action)) if v}
        if not (q or job or action):
            # the whole log: one page read by sequence number (no scan)
            top = (before - 1) if before else runner.audit.head()[0]
            low = max(1, top - PAGE_SIZE + 1)
            shown = list(runner.audit.entries(since=low, until=top))[::-1] if top > 0 else []
            total = runner.audit.count()
            older = low > 1
            newer = bool(before)
        else:
            matches = []
            needle = q.lower()
            for e in runner.audit.entries(job=job):
                if action and e.action != action:
                    continue
                if needle:
                    fields = (e.actor, e.action, e.job, e.step, e.dataset, e.party)
                    hay = " ".join(
                        [*(str(v) for v in fields if v), json.dumps(e.evidence, sort_keys=True)]
                    ).lower()  # (the evidence as the page shows it)
                    if needle not in hay:
                        continue
                matches.append(e)
            matches.reverse()
            start = 0
            if before:
                start = next((i for i, e in enumerate(matches) if e.seq < before), len(matches))
            shown = matches[start : start + PAGE_SIZE]
            total = len(matches)
            older = start + PAGE_SIZE < len(matches)
            newer = start > 0
        next_url = (
            "/audit?" + urlencode({**base, "before": shown[-1].seq}) if older and shown else None
        )
        prev_url = "/audit?" + urlencode(base) if newer else None
        body = pages.audit_page(
            shown,
            total=total,
            shown_from=shown[0].seq if shown else 0,
            q=q,
            job=job or "",
            action=action,
            actions=sorted(a.value for a in Action),
            csrf=s.csrf,
            verdict=verdict,
            next_url=next_url,
            prev_url=prev_url,
        )
        return page("Audit log", body, s, active="audit")

    @api.get("/audit", include_in_schema=False)
    def audit(request: Request) -> Response:
        s = require(request)
        return audit_view(request, s, None, dict(request.query_params))

    @api.post("/audit/verify", include_in_schema=False)
    async def audit_verify(request: Request) -> Response:
        s, _ = await checked_post(request)
        from privfin.node.operator import verify_audit

        report = await run_in_threadpool(verify_audit, config, runner)
        verdict = {"ok": report.ok, "summary": str(report)}
        return audit_view(request, s, verdict, {})
