"""Pytest plugin: with ``PRIVFIN_STRICT_SKIPS=1`` (set by ``.ci/run``) a skip fails the run
unless it is an allowed one.

The only acceptable skip is a missing optional peer or service, and its reason says what to
install: it starts with one of :data:`ALLOWED_SKIPS` and names the install step. A test that
skips because data, a file or anything else is missing fails CI instead of hiding. Loaded by
``tests/conftest.py``.
"""

from __future__ import annotations

import os

import pytest

#: Reason prefixes of the acceptable skips (each reason must also say what to install).
ALLOWED_SKIPS: tuple[str, ...] = (
    "PostgreSQL not available",  # the store_url fixture without PRIVFIN_TEST_POSTGRES_URL
    "Ray not installed",  # the optional privfin[ray] extra: "... (pip install privfin[ray])"
    # the optional PyTorch adapter of horizontal FL (privfin[torch]; a 2-minute install .ci
    # leaves out: tested wherever torch is installed)
    "PyTorch not installed",
    "benchmark peer not installed",  # another framework a comparison runs against
    # the dashboard's browser tests (tests/dashboard): .ci/chromium.sh installs it and sets
    # PRIVFIN_REQUIRE_CHROMIUM=1, so in CI they run (or fail) and never skip
    "Chromium not installed",
    # the assessment's emulated WAN (tests/assess/measure/test_netem.py): needs root, iproute2
    # (.ci/iproute2.sh installs it) and a kernel with the sch_netem qdisc
    "tc netem not available",
)


def allowed(reason: str) -> bool:
    """Whether a skip with this reason is acceptable in CI: an allowed prefix, then what to
    install."""
    return any(reason.startswith(p) and "install" in reason[len(p) :] for p in ALLOWED_SKIPS)


class SkipCheck:
    """Records the skips that are not allowed; fails the session and lists them."""

    def __init__(self) -> None:
        self.bad: list[str] = []

    def _record(self, report: pytest.CollectReport | pytest.TestReport) -> None:
        if not report.skipped or hasattr(report, "wasxfail"):
            return
        longrepr = report.longrepr
        reason = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
        reason = reason.removeprefix("Skipped: ")
        if not allowed(reason):
            self.bad.append(f"{report.nodeid}: {reason}")

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        self._record(report)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self._record(report)

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if self.bad and session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        if not self.bad:
            return
        terminalreporter.section("skips not allowed in CI (PRIVFIN_STRICT_SKIPS=1)", red=True)
        for line in self.bad:
            terminalreporter.line(line)
        terminalreporter.line(
            "Only a missing optional peer or service may skip, with a reason starting with one "
            f"of: {'; '.join(ALLOWED_SKIPS)}; and saying what to install (tests/_skipcheck.py)."
        )


def pytest_configure(config: pytest.Config) -> None:
    if os.environ.get("PRIVFIN_STRICT_SKIPS") == "1":
        config.pluginmanager.register(SkipCheck(), "privfin-strict-skips")
