"""[14] Decoders of foreign evidence fail only with AttestationError: random edits of the
real quotes, reports and documents (truncations, insertions, byte changes) never crash a
verifier with another exception, and never verify."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from privfin.tee import AttestationError
from privfin.tee._x509 import load_der_certificate
from privfin.tee.dcap import Collateral, verify_dcap
from privfin.tee.nitro import decode_document_bytes, verify_nitro
from privfin.tee.snp import verify_snp

from ._evidence import SGX_AT, SNP_NOW, read, t

QUOTE = read("sgx/sgx_quote_v3.bin")
TDX = read("tdx/tdx_quote_v4.bin")
COLLATERAL = Collateral.from_qvl_json(read("sgx/sgx_quote_v3_collateral.json"))
REPORT = bytes.fromhex(read("sev-snp/virtee_milan_report.hex").decode())
VCEK = [load_der_certificate(read("sev-snp/virtee_milan_vcek.der"))]
DOC = decode_document_bytes(read("nitro/evervault_2022-10-13_production.cbor"))


def edited(data: bytes) -> st.SearchStrategy[bytes]:
    """Edits of ``data`` that change it."""
    return _edit(data).filter(lambda out: out != data)


@st.composite
def _edit(draw: st.DrawFn, data: bytes) -> bytes:
    kind = draw(st.sampled_from(["flip", "truncate", "insert", "splice"]))
    i = draw(st.integers(0, len(data) - 1))
    if kind == "flip":
        b = bytearray(data)
        b[i] ^= draw(st.integers(1, 255))
        return bytes(b)
    if kind == "truncate":
        return data[:i]
    if kind == "insert":
        return data[:i] + draw(st.binary(min_size=1, max_size=8)) + data[i:]
    j = draw(st.integers(i, min(len(data), i + 64)))
    return data[:i] + draw(st.binary(max_size=64)) + data[j:]


FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(edited(QUOTE))
def test_sgx_quote_edits(raw: bytes) -> None:
    if raw.startswith(QUOTE) and not any(raw[len(QUOTE) :]):
        return  # zero padding appended: the same quote (accepted by design, see dcap.py)
    with pytest.raises(AttestationError):
        verify_dcap(raw, collateral=COLLATERAL, at=SGX_AT)


@FUZZ
@given(edited(TDX))
def test_tdx_quote_edits(raw: bytes) -> None:
    if raw.rstrip(b"\0") == TDX.rstrip(b"\0"):
        return  # only the zero padding changed length: the same quote
    with pytest.raises(AttestationError):
        verify_dcap(raw, at=SGX_AT)


@FUZZ
@given(edited(REPORT))
def test_snp_report_edits(raw: bytes) -> None:
    with pytest.raises(AttestationError):
        verify_snp(raw, VCEK, at=SNP_NOW)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(edited(DOC))
def test_nitro_document_edits(raw: bytes) -> None:
    with pytest.raises(AttestationError):
        verify_nitro(raw, at=t("2022-10-13T09:00"))


@FUZZ
@given(st.binary(max_size=2000))
def test_random_bytes(raw: bytes) -> None:
    for fn in (
        lambda: verify_dcap(raw, at=SGX_AT),
        lambda: verify_snp(raw, VCEK, at=SNP_NOW),
        lambda: verify_nitro(raw, at=SNP_NOW),
    ):
        with pytest.raises(AttestationError):
            fn()
