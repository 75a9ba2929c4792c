"""Paths and times of the recorded evidence in tests/data/tee (see its README.md)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

DATA = Path(__file__).resolve().parents[1] / "data" / "tee"


def t(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def read(rel: str) -> bytes:
    return (DATA / rel).read_bytes()


#: Inside every window of the Intel samples with full collateral (README "Window").
SGX_AT = t("2025-07-04T00:00:00")
TDX_V4_AT = t("2025-07-04T00:00:00")
TDX_V5_OUTDATED_AT = t("2026-03-01T00:00:00")
TRUSTEE_TDX_AT = t("2025-11-01T00:00:00")
#: "Now" for the SNP samples that are valid now (README: "Now" = 2026-11-27).
SNP_NOW = t("2026-11-27T00:00:00")
VLEK_AT = t("2025-06-01T00:00:00")
