"""The dashboard without a browser (FastAPI's TestClient on the operator app): login and
sessions, refusals without a session or a CSRF token, escaping of hostile names, error pages
in words, and the pages reading the node's own stores."""

from __future__ import annotations

import asyncio
import html
import json
import re
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest

from privfin.federation.mailbox import Mailbox
from privfin.federation.tls import create_identity
from privfin.node.config import NodeConfig, PeerConfig
from privfin.node.operator import create_operator_app
from privfin.node.runner import JobRunner

HOSTILE = '<script>alert("x")</script>'
FIELD = '"><img src=x onerror=alert(1)>'


class Client:
    """A synchronous client of an ASGI app that keeps its cookies as a browser does
    (starlette's TestClient would need another httpx)."""

    def __init__(self, app: Any) -> None:
        self.transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        self.cookies = httpx.Cookies()

    def request(
        self, method: str, url: str, *, follow_redirects: bool = True, **kw: Any
    ) -> httpx.Response:
        async def go() -> httpx.Response:
            async with httpx.AsyncClient(
                transport=self.transport, base_url="http://op", cookies=self.cookies
            ) as c:
                r = await c.request(method, url, **kw)
                while follow_redirects and r.is_redirect:
                    r = await c.request("GET", r.headers["location"])
                self.cookies = c.cookies
                return r

        return asyncio.run(go())

    def get(self, url: str, **kw: Any) -> httpx.Response:
        return self.request("GET", url, **kw)

    def post(self, url: str, **kw: Any) -> httpx.Response:
        return self.request("POST", url, **kw)


class Node:
    def __init__(self, tmp_path: Path) -> None:
        ids = {p: create_identity(p, tmp_path / p) for p in ("bank", "telco")}
        data = tmp_path / "bank_train.csv"
        pd.DataFrame({"id": ["a", "b", "c"], "y": [0, 1, 0], FIELD: [1.0, 2.0, 3.0]}).to_csv(
            data, index=False
        )
        self.config = NodeConfig(
            party="bank",
            port=1,
            state_dir=tmp_path / "state",
            cert=ids["bank"].cert,
            key=ids["bank"].key,
            peers={"telco": PeerConfig(url="https://127.0.0.1:1", cert=ids["telco"].cert)},
            datasets={"bank_train": data},
        )
        self.box = Mailbox(tmp_path / "state" / "node.sqlite")
        self.runner = JobRunner(self.config, self.box)
        self.app = create_operator_app(self.config, self.runner)
        self.token: str = self.app.state.token
        self.client = Client(self.app)

    def login(self) -> str:
        """Log in; returns the session's CSRF token (from a page's logout form)."""
        r = self.client.post("/login", data={"token": self.token, "next": "/data"})
        assert r.status_code == 200, r.text
        return csrf_of(r.text)

    def close(self) -> None:
        self.runner.shutdown()
        self.box.close()


VOID = {"meta", "link", "input", "br", "img", "hr"}


class _Balance(HTMLParser):
    """Every element the pages open is closed, in order (a check that escaping and the
    templates did not break the markup)."""

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.problems: list[str] = []

    def handle_starttag(self, tag: str, attrs: Any) -> None:
        if tag not in VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack[-1] != tag:
            self.problems.append(f"</{tag}> closes {self.stack[-1:]}")
        else:
            self.stack.pop()


def balanced(page: str) -> list[str]:
    parser = _Balance()
    parser.feed(page)
    parser.close()
    return parser.problems + [f"<{t}> not closed" for t in parser.stack]


def csrf_of(page: str) -> str:
    m = re.search(r'name="csrf" value="([^"]+)"', page)
    assert m, page[:500]
    return m.group(1)


@pytest.fixture
def node(tmp_path: Path) -> Iterator[Node]:
    n = Node(tmp_path)
    try:
        yield n
    finally:
        n.close()


def test_login_sets_a_strict_httponly_cookie(node: Node) -> None:
    r = node.client.post(
        "/login", data={"token": node.token, "next": "/data"}, follow_redirects=False
    )
    assert r.status_code == 303 and r.headers["location"] == "/data"
    cookie = r.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie and "path=/" in cookie
    assert node.token not in r.headers["set-cookie"]
    page = node.client.get("/data")
    assert page.status_code == 200 and "bank_train" in page.text


def _spec(job: str, purpose: str = "credit scoring") -> dict[str, Any]:
    return {
        "job": job,
        "purpose": purpose,
        "parties": {
            "bank": {"datasets": {"t": "bank_train"}},
            "telco": {"datasets": {"t": "telco_data"}},
        },
        "results": ["bank"],
        "steps": {
            "psi": {
                "component": "psi",
                "roles": {"bank": "receiver", "telco": "sender"},
                "inputs": {"table": "datasets.t"},
            }
        },
    }


PAGES = ("/", "/approvals", "/jobs", "/data", "/data/bank_train", "/audit")


def test_every_page_wants_a_session(node: Node) -> None:
    for path in PAGES:
        r = node.client.get(path, follow_redirects=False)
        assert r.status_code == 303, path
        assert r.headers["location"].startswith("/login?next="), path
    # the live state and the plots answer 401 without a session
    assert node.client.get("/jobs/j1/state.json").status_code == 401
    # a wrong token opens no session; the bearer token of the API is not a session either
    r = node.client.post("/login", data={"token": "x" * 43})
    assert r.status_code == 401 and "That is not this node" in r.text
    assert not node.client.cookies
    bearer = {"Authorization": f"Bearer {node.token}"}
    assert node.client.get("/data", headers=bearer, follow_redirects=False).status_code == 303
    # a forged cookie is no session
    node.client.cookies.set("privfin_session", "forged")
    assert node.client.get("/data", follow_redirects=False).status_code == 303
    # the operator API itself still wants its bearer token and answers JSON
    r = node.client.get("/v1/jobs")
    assert r.status_code == 401 and r.json()["detail"] == "a bearer token is required"
    assert node.client.get("/v1/jobs", headers=bearer).json() == {"jobs": []}


def test_login_redirects_only_within_the_site(node: Node) -> None:
    for target in ("https://evil.example/", "//evil.example/x", "/\\evil.example"):
        r = node.client.post(
            "/login", data={"token": node.token, "next": target}, follow_redirects=False
        )
        assert r.headers["location"] == "/", target


def test_decisions_need_the_csrf_token_and_the_same_origin(node: Node) -> None:
    node.runner.negotiator.propose(_spec("j-csrf"))
    csrf = node.login()
    view = node.runner.negotiator.view("j-csrf")
    assert view["status"] == "pending"
    # no token, a wrong token, a token from another origin: refused, nothing decided
    for data, headers in (
        ({}, {}),
        ({"csrf": "wrong"}, {}),
        ({"csrf": csrf}, {"Origin": "https://evil.example"}),
    ):
        r = node.client.post("/approvals/j-csrf/revoke", data=data, headers=headers)
        assert r.status_code == 403, r.text
        assert "Traceback" not in r.text and "<h1>Error</h1>" in r.text
    assert node.runner.negotiator.view("j-csrf")["decisions"]["bank"]["decision"] == "approve"
    # the confirmation page, then the decision with the session's token
    page = node.client.get("/approvals/j-csrf/revoke")
    assert page.status_code == 200 and "Confirm: revoke j-csrf" in page.text
    r = node.client.post(
        "/approvals/j-csrf/revoke", data={"csrf": csrf_of(page.text), "reason": "no"}
    )
    assert r.status_code == 200 and "You revoked job j-csrf" in r.text
    assert node.runner.negotiator.view("j-csrf")["decisions"]["bank"]["decision"] == "revoke"
    # logging out needs the token too, and ends the session
    assert node.client.post("/logout", data={}).status_code == 403
    node.client.post("/logout", data={"csrf": csrf})
    assert node.client.get("/data", follow_redirects=False).status_code == 303


def test_hostile_names_are_escaped(node: Node) -> None:
    node.runner.negotiator.propose(_spec("j-xss", purpose=HOSTILE))
    node.login()
    seen = 0
    for path in (*PAGES, "/jobs/j-xss", "/approvals?all=1", "/audit?q=%3Cscript%3E"):
        r = node.client.get(path)
        assert r.status_code == 200, path
        assert "<script>alert" not in r.text and "<img src=x" not in r.text, path
        assert balanced(r.text) == [], path
        seen += ("&lt;script&gt;alert" in r.text) + ("&lt;img src=x" in r.text)
    assert seen >= 3  # the purpose and the field name are shown, escaped
    # a search term is echoed back escaped
    r = node.client.get("/jobs", params={"q": '"><script>x</script>'})
    assert "<script>x" not in r.text and "&quot;&gt;&lt;script&gt;x" in r.text
    # every page forbids inline script
    assert "script-src 'self'" in r.headers["content-security-policy"]


def test_errors_are_words_without_a_traceback(node: Node, monkeypatch: Any) -> None:
    node.login()
    r = node.client.get("/jobs/no-such-job")
    assert r.status_code == 404
    assert "no job or proposal 'no-such-job' at this node" in html.unescape(r.text)
    r = node.client.get("/data/nothing")
    assert r.status_code == 404
    assert "no dataset 'nothing' is registered here" in html.unescape(r.text)
    assert node.client.get("/no/such/page").status_code == 404
    r = node.client.get("/jobs/bad$name")
    assert r.status_code == 400 and "must be 1-64 characters" in r.text

    def broken(*args: Any, **kw: Any) -> Any:
        raise RuntimeError("secret detail /var/lib/privfin/key.pem")

    monkeypatch.setattr(node.runner, "jobs", broken)
    r = node.client.get("/jobs")
    assert r.status_code == 500
    assert "Something went wrong on the node" in r.text
    for leak in ("Traceback", "RuntimeError", "secret detail", "key.pem"):
        assert leak not in r.text
    # the JSON API keeps answering JSON (without the detail)
    r = node.client.get("/v1/jobs", headers={"Authorization": f"Bearer {node.token}"})
    assert r.status_code == 500 and "secret" not in r.text


def test_pages_show_what_the_stores_hold(node: Node) -> None:
    node.runner.dp_ledger.set_budget("bank_train", 2.0, 1e-6, who="test")
    node.runner.negotiator.propose(_spec("j-show"))
    node.login()
    data = node.client.get("/data/bank_train").text
    for text in ("Schema with JR/T 0171 sensitivity levels", "ε 2, δ 1e-06", "DP budget (epsilon)"):
        assert text in data
    overview = node.client.get("/").text
    assert "telco" in overview and "no contact since this node started" in overview
    node.runner.contacts.seen("telco")
    assert "in contact" in node.client.get("/").text
    jobs = node.client.get("/jobs").text
    assert "j-show" in jobs and "not started" in jobs
    job = node.client.get("/jobs/j-show").text
    assert "waiting for: telco" in job and "proposal_sent" in job
    assert 'data-step="psi"' in job  # the DAG is drawn from the stored proposal
    # a crafted link cannot make the page claim a decision this node did not make
    crafted = node.client.get("/jobs/j-show", params={"decided": "rejected"}).text
    assert "You rejected" not in crafted
    # the audit log: search, then verify the chain
    audit = node.client.get("/audit", params={"action": "dp_spend"}).text
    assert "dp_spend" in audit and "proposal_sent</td>" not in audit
    r = node.client.post("/audit/verify", data={"csrf": csrf_of(audit)})
    assert r.status_code == 200 and "Chain verified:" in r.text
    # the static files are served (no CDN), with a strict policy
    css = node.client.get("/static/dashboard.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
    assert node.client.get("/static/../operator.token").status_code == 404


def test_a_federated_jobs_loss_history_is_plotted(node: Node) -> None:
    """A single-component job's result with a per-round history (horizontal FL's server)."""
    from sqlalchemy import insert

    from privfin.node.runner import jobs_table

    spec = {"job": "hfl-1", "component": "hfl", "roles": {"bank": ["server"], "telco": ["client"]}}
    history = [
        {"round": 0, "train_loss": 0.69},
        {"round": 1, "failed": "too few clients"},
        {"round": 2, "train_loss": 0.52},
        {"round": 3, "train_loss": 0.47},
    ]
    with node.box.engine.begin() as conn:
        conn.execute(
            insert(jobs_table).values(
                job="hfl-1",
                spec=json.dumps(spec),
                status="done",
                result=json.dumps(
                    {"role": "server", "history": history, "rounds": 4, "weights": [987.654321]}
                ),
                updated_at=1,
            )
        )
    node.login()
    page = node.client.get("/jobs/hfl-1").text
    assert "Loss per round (step result)" in page
    assert "987.654321" not in page  # a result's values are not shown (privfin job results)
    svg = node.client.get("/jobs/hfl-1/plots/result/history/loss.svg")
    assert svg.headers["content-type"].startswith("image/svg+xml")
    points = re.search(r'<polyline[^>]* points="([^"]+)"', svg.text)
    assert points and len(points.group(1).split()) == 3  # the failed round has no loss
    assert node.client.get("/jobs/hfl-1/plots/result/history/roc.svg").status_code == 404


def test_the_audit_log_pages_newest_first(node: Node) -> None:
    from privfin.audit import Action

    for i in range(130):
        node.runner.record(Action.message_refused, actor="node", evidence={"kind": f"k{i}"})
    node.login()
    total = node.runner.audit.count()
    first = node.client.get("/audit").text
    seqs = [int(x) for x in re.findall(r"<tr><td>(\d+)</td>", first)]
    assert seqs == list(range(total, total - 100, -1))
    older = re.search(r'<a href="(/audit\?before=\d+)">Older</a>', first)
    assert older
    second = node.client.get(html.unescape(older.group(1))).text
    assert [int(x) for x in re.findall(r"<tr><td>(\d+)</td>", second)] == list(
        range(total - 100, 0, -1)
    )
    assert "Older</a>" not in second and "Newer</a>" in second
    # a search scans the log: the text of the evidence, newest first
    found = node.client.get("/audit", params={"q": '"k12"'}).text
    assert [int(x) for x in re.findall(r"<tr><td>(\d+)</td>", found)] == [total - 130 + 13]
