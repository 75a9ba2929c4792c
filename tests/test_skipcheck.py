"""The CI skip check (tests/_skipcheck.py): a skip for missing data fails a strict run; a
missing optional service that says what to install does not."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from _skipcheck import ALLOWED_SKIPS, allowed

TESTS = Path(__file__).resolve().parent

SAMPLE = """
import pytest

def test_runs():
    pass

def test_service():
    pytest.skip("PostgreSQL not available: set PRIVFIN_TEST_POSTGRES_URL (install postgresql)")

@pytest.mark.xfail(reason="known")
def test_xfail():
    raise ValueError
"""


def _pytest(root: Path, strict: bool) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "PRIVFIN_STRICT_SKIPS"}
    env["PYTHONPATH"] = str(TESTS)
    if strict:
        env["PRIVFIN_STRICT_SKIPS"] = "1"
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "_skipcheck", "-p", "no:cacheprovider", "."],
        check=False, cwd=root, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_allowed_reasons_name_a_service_and_what_to_install() -> None:
    assert allowed("PostgreSQL not available: set PRIVFIN_TEST_POSTGRES_URL (install postgresql)")
    assert not allowed("PostgreSQL not available")  # says nothing about what to install
    assert not allowed("FATE example data not found at ../shared/data/fate (install it)")
    assert not allowed("could not import 'tenseal': No module named 'tenseal'")
    assert all(not allowed(p) for p in ALLOWED_SKIPS)


def test_strict_run_fails_on_a_data_skip_and_lists_it(tmp_path: Path) -> None:
    (tmp_path / "test_ok.py").write_text(SAMPLE)
    assert _pytest(tmp_path, strict=True).returncode == 0  # allowed skip, xfail, pass
    (tmp_path / "test_data.py").write_text(
        "import pytest\n\n"
        "def test_needs_data():\n"
        "    pytest.skip('FATE example data not found at ../shared')\n"
    )
    (tmp_path / "test_module.py").write_text(
        "import pytest\n\npytest.importorskip('no_such_module_xyz')\n"
    )
    relaxed = _pytest(tmp_path, strict=False)
    assert relaxed.returncode == 0, relaxed.stdout
    strict = _pytest(tmp_path, strict=True)
    assert strict.returncode == pytest.ExitCode.TESTS_FAILED, strict.stdout
    assert "skips not allowed in CI" in strict.stdout
    assert "test_data.py::test_needs_data: FATE example data not found" in strict.stdout
    assert "test_module.py: could not import 'no_such_module_xyz'" in strict.stdout
    assert "test_service" not in strict.stdout.split("skips not allowed in CI")[1]
