"""Benchmark: attestation verification in privfin.tee, and the simulated enclave step.

Run from the repository root::

    .venv/bin/python benchmarks/tee.py           # full run
    .venv/bin/python benchmarks/tee.py --quick   # fewer repetitions

Verifies the recorded evidence of ``tests/data/tee`` (as of each file's validity window) and
reports the best wall-clock time per verification; for the SGX/TDX quotes with full collateral
the peer is Phala's dcap-qvl (Rust, Python wheel) on the same inputs. Then one key release by
the broker to the simulated enclave and one end-to-end ``tee`` component run (two data
parties, 2000 joined rows, logistic regression), which includes starting the enclave process.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "src"))

import _harness  # noqa: E402
from privfin.tee._x509 import load_der_certificate  # noqa: E402
from privfin.tee.dcap import Collateral, verify_dcap  # noqa: E402
from privfin.tee.nitro import verify_nitro  # noqa: E402
from privfin.tee.snp import verify_snp  # noqa: E402

DATA = HERE.parent / "tests" / "data" / "tee"


def _t(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def _qvl(quote: Path, collateral: Path, at: datetime) -> Any:
    try:
        import dcap_qvl
    except ImportError:
        return None
    j = json.loads(collateral.read_text())
    col = dcap_qvl.QuoteCollateralV3(
        j["pck_crl_issuer_chain"],
        bytes.fromhex(j["root_ca_crl"]),
        bytes.fromhex(j["pck_crl"]),
        j["tcb_info_issuer_chain"],
        j["tcb_info"],
        bytes.fromhex(j["tcb_info_signature"]),
        j["qe_identity_issuer_chain"],
        j["qe_identity"],
        bytes.fromhex(j["qe_identity_signature"]),
    )
    raw = quote.read_bytes()
    return lambda: dcap_qvl.verify(raw, col, int(at.timestamp()))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    repeat = 5 if args.quick else 30
    rows: list[dict[str, Any]] = []

    def bench(name: str, fn: Any, peer: Any = None) -> None:
        ours = _harness.timed(fn, repeat=repeat) * 1000
        theirs = _harness.timed(peer, repeat=repeat) * 1000 if peer else None
        _harness.emit(f"tee_verify_{name}", "ms", ours, theirs, "dcap-qvl 0.7.0", False, name)
        rows.append({"evidence": name, "privfin ms": ours, "dcap-qvl ms": theirs})

    for name, quote, col, at in (
        (
            "sgx_v3+collateral",
            "sgx/sgx_quote_v3.bin",
            "sgx/sgx_quote_v3_collateral.json",
            _t("2025-07-04T00:00:00"),
        ),
        (
            "tdx_v4+collateral",
            "tdx/tdx_quote_v4.bin",
            "tdx/tdx_quote_v4_collateral.json",
            _t("2025-07-04T00:00:00"),
        ),
    ):
        raw = (DATA / quote).read_bytes()
        collateral = Collateral.from_qvl_json((DATA / col).read_bytes())
        bench(
            name,
            lambda raw=raw, collateral=collateral, at=at: verify_dcap(
                raw, collateral=collateral, at=at
            ),
            _qvl(DATA / quote, DATA / col, at),
        )
    raw = (DATA / "tdx/tdx_quote_v4_dstack.hex").read_bytes()
    bench("tdx_v4_quote_only", lambda: verify_dcap(raw, at=_t("2025-07-04T00:00:00")))
    doc = (DATA / "nitro/blocky_2024-09-07_production.b64").read_bytes()
    bench("nitro", lambda: verify_nitro(doc, at=_t("2024-09-07T15:00:00")))
    report = (DATA / "sev-snp/trustee_milan_report.bin").read_bytes()
    vcek = [load_der_certificate((DATA / "sev-snp/trustee_milan_vcek.der").read_bytes())]
    bench("snp_milan", lambda: verify_snp(report, vcek, at=_t("2026-11-27T00:00:00")))
    _harness.print_table(f"attestation verification ({_harness.machine()})", rows)

    import time

    import numpy as np
    import pandas as pd

    from privfin.config import Settings
    from privfin.runtime import simulate
    from privfin.tee.component import tee_component

    n = 2000
    rng = np.random.default_rng(0)
    ids = np.arange(n)
    x = rng.normal(size=(n, 4))
    y = (x.sum(axis=1) + rng.normal(size=n) > 0).astype(int)
    bank = pd.DataFrame({"id": ids, "a": x[:, 0], "b": x[:, 1], "y": y})
    telco = pd.DataFrame({"id": ids, "c": x[:, 2], "d": x[:, 3]})
    start = time.perf_counter()
    out = simulate(
        tee_component,
        {"bank": ["data", "result"], "telco": ["data"], "host": ["enclave_host"]},
        params={"model": "lr"},
        inputs={"bank": {"table": bank}, "telco": {"table": telco}},
        settings=Settings(mode="development"),
        timeout=300,
    )
    seconds = time.perf_counter() - start
    _harness.emit("tee_component_lr_2000rows", "s", seconds, None, "", False, "2000 rows")
    _harness.print_table(
        "tee component (simulated enclave, end to end)",
        [{"rows": n, "seconds": seconds, "auc": out["bank"]["metrics"]["auc"]}],
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
