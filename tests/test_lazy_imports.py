"""[10] item 3: ``import privfin`` stays cheap; packages export their public API lazily."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HEAVY = ("numpy", "pandas", "scipy", "sklearn", "torch", "tenseal", "gmpy2", "sqlalchemy")


def _run(code: str) -> str:
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout.strip()


def test_import_privfin_imports_no_heavy_module() -> None:
    code = (
        "import sys\n"
        "import privfin, privfin.fl, privfin.fl.vertical, privfin.fl.vertical.hetero_lr\n"
        "import privfin.fl.vertical.secureboost, privfin.fl.vertical.binning\n"
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    assert _run(code) == "[]"


def test_vertical_estimators_are_exported_lazily() -> None:
    code = (
        "import sys\n"
        "import privfin.fl.vertical as v\n"
        "assert 'privfin.fl.vertical.secureboost.estimator' not in sys.modules\n"
        "from privfin.fl.vertical import HeteroSecureBoost, HeteroLogisticRegression\n"
        "from privfin.fl.vertical import HeteroScorecard\n"
        "from privfin.fl.vertical.hetero_lr import LRParams, hetero_lr_component\n"
        "from privfin.fl.vertical.secureboost import HeteroSecureBoost as B, BoostParams\n"
        "from privfin.fl.vertical.binning import woe_transform, hetero_binning_component\n"
        "assert B is HeteroSecureBoost\n"
        "assert HeteroSecureBoost.__module__ == 'privfin.fl.vertical.secureboost.estimator'\n"
        "assert set(v.__all__) <= set(dir(v))\n"
        "try:\n"
        "    v.NoSuchName\n"
        "except AttributeError as exc:\n"
        "    print(exc)\n"
    )
    assert _run(code) == "module 'privfin.fl.vertical' has no attribute 'NoSuchName'"


def test_dp_exports_lazily() -> None:
    """[12] ``import privfin.dp`` loads no heavy module; its names resolve on first use."""
    code = (
        "import sys\n"
        "import privfin.dp as dp\n"
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))\n"
        "assert dp.BudgetLedger.__module__ == 'privfin.dp.ledger'\n"
        "assert dp.DiscreteGaussian.__module__ == 'privfin.dp.mechanisms'\n"
        "from privfin.errors import BudgetExceededError\n"
        "assert dp.BudgetExceeded is BudgetExceededError\n"
    )
    assert _run(code) == "[]"


def test_psi_exports_lazily_and_the_psi_command_starts_nodes_without_heavy_modules() -> None:
    """[16] ``privfin psi`` (nodes) imports neither the protocols nor pandas, SQLAlchemy,
    FastAPI, alembic or httpx (the node client) before it starts its nodes: each node loads
    what it needs itself."""
    code = (
        "import sys\n"
        "import privfin.psi as psi\n"
        "assert 'privfin.psi.component' not in sys.modules\n"
        "import privfin.cli.main\n"
        "from privfin.psi.roles import psi_roles\n"
        "from privfin.node.cluster import cluster_up\n"
        "heavy = ('pandas', 'sqlalchemy', 'fastapi', 'alembic', 'uvicorn', 'pyarrow', 'httpx')\n"
        "print(sorted(m for m in (*heavy, 'privfin.psi.component') if m in sys.modules))\n"
        "assert psi.psi_component.__module__ == 'privfin.psi.component'\n"
        "assert psi.simulate.__module__ == 'privfin.psi.api'\n"
        "assert set(psi.__all__) <= set(dir(psi))\n"
        "assert psi_roles(['a', 'b'], 'rr22') == {'a': ('receiver',), 'b': ('sender',)}\n"
        "assert psi_roles(['a', 'b', 'c'], 'ecdh')['c'] == ('member',)\n"
    )
    assert _run(code) == "[]"


def test_node_start_and_a_psi_job_on_a_plain_csv_do_not_import_pandas(tmp_path: Path) -> None:
    """[16] a node imports pandas only when a job needs it (0.5-0.6 s of every node start):
    not at start, not to register or verify a plain CSV dataset, not for a PSI job's ids."""
    path = tmp_path / "ids.csv"
    path.write_text("id\nu-1\nu-2\nu-3\n")
    code = (
        "import sys\n"
        "import sqlalchemy as sa\n"
        "import privfin.node.server, privfin.node.runner, privfin.jobs.scheduler\n"
        "import privfin.psi.component, privfin.psi.rr22_receiver, privfin.psi.rr22_sender\n"
        "import privfin.psi.kkrt_receiver, privfin.psi.receiver, privfin.psi.sender\n"
        "from privfin.data import registry\n"
        "from privfin.psi._prepare import PsiParams, prepare\n"
        "from privfin.psi.sources import iter_id_chunks\n"
        "engine = sa.create_engine('sqlite://')\n"
        "registry.metadata.create_all(engine)\n"
        "reg = registry.DatasetRegistry(engine)\n"
        f"print(reg.sync_config({{'d': {str(path)!r}}}))\n"
        "reg.verify('d')\n"
        f"chunks = iter_id_chunks({str(path)!r}, 'id')\n"
        "prepared, _ = prepare({'chunks': chunks}, PsiParams.from_mapping({}))\n"
        "assert len(prepared) == 3\n"
        "print(sorted(m for m in ('pandas', 'alembic') if m in sys.modules))\n"
    )
    assert _run(code).splitlines()[-1] == "[]"
