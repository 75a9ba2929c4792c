"""The dashboard without a browser (FastAPI's TestClient on the operator app): login and
sessions, refusals without a session or a CSRF token, escaping of hostile names, error pages
in words, and the pages reading the node's own stores."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
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
