"""[14] Each recorded evidence file gives the outcome its README states, as of its validity
window; flipped bytes, swapped certificates, a wrong root and verification after expiry fail
with a specific error."""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta

import cbor2
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from privfin.tee import (
    AttestationError,
    BindingError,
    CertificateChainError,
    EvidenceFormatError,
    NotValidAtTimeError,
    Platform,
    SignatureError,
    TcbStatus,
    TcbStatusError,
    UntrustedRootError,
)
from privfin.tee._x509 import fingerprint, load_der_certificate, load_pem_certificates
from privfin.tee.dcap import Collateral, verify_dcap
from privfin.tee.nitro import decode_document_bytes, verify_nitro
from privfin.tee.roots import (
    AMD_ARK_GENOA,
    AMD_ARK_MILAN,
    AMD_ARK_TURIN,
    AWS_NITRO_ROOT_G1,
    INTEL_SGX_ROOT_CA,
    pinned,
)
from privfin.tee.snp import verify_snp

from ._evidence import (
    DATA,
    SGX_AT,
    SNP_NOW,
    TDX_V4_AT,
    TDX_V5_OUTDATED_AT,
    TRUSTEE_TDX_AT,
    VLEK_AT,
    read,
    t,
)

# ----------------------------------------------------------------------------- roots


def test_pinned_roots_are_the_recorded_ones() -> None:
    assert (
        pinned(AWS_NITRO_ROOT_G1)
        == load_pem_certificates(read("nitro/aws_nitro_enclaves_root_g1.pem"))[0]
    )
    assert fingerprint(pinned(AWS_NITRO_ROOT_G1)) == (
        "641a0321a3e244efe456463195d606317ed7cdcc3c1756e09893f3c68f79bb5b"
    )
    intel = load_der_certificate(read("sgx/intel_sgx_root_ca.der"))
    assert pinned(INTEL_SGX_ROOT_CA) == intel
    assert fingerprint(intel) == "44a0196b2b99f889b8e149e95b807a350e7424964399e885a7cbb8ccfab674d3"
    assert pinned(AMD_ARK_MILAN) == load_pem_certificates(read("sev-snp/amd_milan_ask_ark.pem"))[1]
    assert pinned(AMD_ARK_GENOA) == load_pem_certificates(read("sev-snp/amd_genoa_ark.pem"))[0]
    assert pinned(AMD_ARK_TURIN) == load_pem_certificates(read("sev-snp/amd_turin_ask_ark.pem"))[1]


# ----------------------------------------------------------------------------- Nitro

NITRO = {
    "blocky_2024-09-07_production.b64": (
        "2024-09-07T14:37:39.545",
        False,
        "e72a46ca80a260fb044a125442f0c7e331813bcbaf9724d9f3857758992766f2d65710a27aa94ae3949dd54e7c9fe86a",
    ),
    "blocky_2024-09-07_debug.b64": ("2024-09-07T14:38:06.508", True, "00" * 48),
    "evervault_2022-10-13_production.cbor": (
        "2022-10-13T08:58:02.136",
        False,
        "f4d48b81a460c9916d1e685119074bf24660afd3e34fae9fca0a0d28d9d5599936332687e6f66fc890ac8cf150142d8b",
    ),
    "evervault_2022-10-12_debug.cbor": ("2022-10-12T13:50:06.081", True, "00" * 48),
    "evervault_2023-09-18_debug.b64": ("2023-09-18T15:03:30.860", True, "00" * 48),
}


@pytest.mark.parametrize("name", sorted(NITRO))
def test_nitro_documents_verify_at_their_time_and_are_expired_now(name: str) -> None:
    at, debug, pcr0 = NITRO[name]
    result = verify_nitro(read(f"nitro/{name}"), at=t(at))
    assert result.platform is Platform.nitro
    assert result.measurement == pcr0
    assert result.debug is debug
    assert result.issued_at == t(at)
    assert result.valid_from <= t(at) <= result.valid_until
    assert result.tcb_status is None
    with pytest.raises(NotValidAtTimeError, match="expired"):
        verify_nitro(read(f"nitro/{name}"), at=SNP_NOW)
    with pytest.raises(NotValidAtTimeError, match="expired"):
        verify_nitro(read(f"nitro/{name}"), at=result.valid_until + timedelta(seconds=1))
    with pytest.raises(NotValidAtTimeError, match="not valid yet"):
        verify_nitro(read(f"nitro/{name}"), at=result.valid_from - timedelta(seconds=1))


def test_nitro_fields() -> None:
    r = verify_nitro(read("nitro/evervault_2022-10-13_production.cbor"), at=t("2022-10-13T09:00"))
    assert r.measurements["pcr8"].startswith("8790eb3cce6c83d07e84b126dc61ca92")
    assert r.signer == r.measurements["pcr8"]
    assert r.details["module_id"] == "i-020b6af9246d90e92-enc0183d09086c24190"
    assert r.public_key is None and r.report_data == b"" and r.nonce is not None
    assert r.nonce.hex().startswith("cb3dc2eb76c0c1344adf10cc4868591e5bb7fa4b")
    d = verify_nitro(read("nitro/evervault_2022-10-12_debug.cbor"), at=t("2022-10-12T14:00"))
    assert d.public_key == b"my super secret key" and d.report_data == b"hello, world!"
    b = verify_nitro(read("nitro/blocky_2024-09-07_production.b64"), at=t("2024-09-07T15:00"))
    assert b.report_data == b"\x01" * 1024 and b.nonce == b"\x01" * 1024


def _nitro_parts() -> tuple[list[object], dict[str, object]]:
    raw = decode_document_bytes(read("nitro/evervault_2022-10-13_production.cbor"))
    outer = cbor2.loads(raw)
    return outer, cbor2.loads(outer[2])


NITRO_AT = t("2022-10-13T09:00")


def test_nitro_every_flipped_byte_fails() -> None:
    raw = read("nitro/evervault_2022-10-13_production.cbor")
    # every byte of the signature and a stride through the rest (headers, payload, chain)
    positions = list(range(0, len(raw), 13)) + list(range(len(raw) - 96, len(raw)))
    for i in positions:
        bad = bytearray(raw)
        bad[i] ^= 0x01
        with pytest.raises(AttestationError):
            verify_nitro(bytes(bad), at=NITRO_AT)


def test_nitro_payload_pcr_change_breaks_the_signature() -> None:
    outer, payload = _nitro_parts()
    payload["pcrs"][0] = bytes(48)  # type: ignore[index]
    outer[2] = cbor2.dumps(payload)
    with pytest.raises(SignatureError, match="COSE_Sign1"):
        verify_nitro(cbor2.dumps(outer), at=NITRO_AT)


def test_nitro_swapped_leaf_certificate_fails_the_chain() -> None:
    outer, payload = _nitro_parts()
    other = cbor2.loads(
        cbor2.loads(decode_document_bytes(read("nitro/evervault_2022-10-12_debug.cbor")))[2]
    )
    payload["certificate"] = other["certificate"]
    outer[2] = cbor2.dumps(payload)
    with pytest.raises(CertificateChainError):
        verify_nitro(cbor2.dumps(outer), at=NITRO_AT)


def _self_signed(cn: str, curve: ec.EllipticCurve | None = None) -> x509.Certificate:
    key = ec.generate_private_key(curve or ec.SECP384R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(t("2019-01-01T00:00"))
        .not_valid_after(t("2049-01-01T00:00"))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA384())
    )


def test_nitro_wrong_root_is_untrusted() -> None:
    with pytest.raises(UntrustedRootError):
        verify_nitro(
            read("nitro/evervault_2022-10-13_production.cbor"),
            at=NITRO_AT,
            root=_self_signed("aws.nitro-enclaves"),
        )
    outer, payload = _nitro_parts()
    payload["cabundle"][0] = _self_signed("aws.nitro-enclaves").public_bytes(  # type: ignore[index]
        Encoding.DER
    )
    outer[2] = cbor2.dumps(payload)
    with pytest.raises(UntrustedRootError):
        verify_nitro(cbor2.dumps(outer), at=NITRO_AT)


def test_nitro_malformed_documents() -> None:
    for bad in (b"", b"not base64!", cbor2.dumps([1, 2, 3]), cbor2.dumps({"a": 1})):
        with pytest.raises(EvidenceFormatError):
            verify_nitro(bad, at=NITRO_AT)
    outer, payload = _nitro_parts()
    payload["user_data"] = b"x" * 2000
    outer[2] = cbor2.dumps(payload)
    with pytest.raises(EvidenceFormatError, match="user_data"):
        verify_nitro(cbor2.dumps(outer), at=NITRO_AT)
    outer, payload = _nitro_parts()
    outer[0] = cbor2.dumps({1: -7})  # ES256
    with pytest.raises(EvidenceFormatError, match="ES384"):
        verify_nitro(cbor2.dumps(outer), at=NITRO_AT)


# ----------------------------------------------------------------------------- SGX / TDX


def _collateral(rel: str) -> Collateral:
    return Collateral.from_qvl_json(read(rel))


def test_sgx_quote_with_collateral() -> None:
    r = verify_dcap(
        read("sgx/sgx_quote_v3.bin"),
        collateral=_collateral("sgx/sgx_quote_v3_collateral.json"),
        at=SGX_AT,
    )
    assert r.platform is Platform.sgx
    assert r.measurement == "33d8736db756ed4997e04ba358d27833188f1932ff7b1d156904d3f560452fbb"
    assert r.signer == "815f42f11cf64430c30bab7816ba596a1da0130c3b028b673133a66cf9a3e0e6"
    assert r.tcb_status is TcbStatus.configuration_and_sw_hardening_needed
    assert r.advisory_ids == ("INTEL-SA-00289", "INTEL-SA-00615")
    assert r.report_data == b"Hello, world!" + bytes(51)
    assert not r.debug
    assert r.details["fmspc"] == "00a067110000"
    assert r.details["qe_mrenclave"] == (
        "96b347a64e5a045e27369c26e6dcda51fd7c850e9b3a3a79e718f43261dee1e4"
    )
    assert r.details["crl_checked"] is True
    assert (r.valid_from, r.valid_until) == (t("2025-06-19T10:56:11"), t("2025-07-19T10:01:18"))


def test_sgx_quote_outside_its_window() -> None:
    col = _collateral("sgx/sgx_quote_v3_collateral.json")
    with pytest.raises(NotValidAtTimeError, match="not valid yet"):
        verify_dcap(read("sgx/sgx_quote_v3.bin"), collateral=col, at=t("2025-06-19T10:56:10"))
    with pytest.raises(NotValidAtTimeError, match="expired"):
        verify_dcap(read("sgx/sgx_quote_v3.bin"), collateral=col, at=SNP_NOW)


def test_tdx_v4_quote_with_collateral() -> None:
    r = verify_dcap(
        read("tdx/tdx_quote_v4.bin"),
        collateral=_collateral("tdx/tdx_quote_v4_collateral.json"),
        at=TDX_V4_AT,
    )
    assert r.platform is Platform.tdx
    assert r.tcb_status is TcbStatus.up_to_date and r.advisory_ids == ()
    assert r.measurement == (
        "91eb2b44d141d4ece09f0c75c2c53d247a3c68edd7fafe8a3520c942a604a407de03ae6dc5f87f27428b2538873118b7"
    )
    assert r.measurements["rtmr3"] == "00" * 48
    assert r.measurements["mrseam"].startswith("5b38e33a6487958b72c3c12a938eaa5e")
    assert r.report_data.hex().startswith("9a9d48e7f6799642d3d1b34e1e5e1742")
    assert not r.debug
    assert (r.valid_from, r.valid_until) == (t("2025-06-19T10:32:27"), t("2025-07-19T10:00:35"))
    with pytest.raises(NotValidAtTimeError):
        verify_dcap(
            read("tdx/tdx_quote_v4.bin"),
            collateral=_collateral("tdx/tdx_quote_v4_collateral.json"),
            at=SNP_NOW,
        )


def test_tdx_v5_outdated_quote_is_rejected() -> None:
    col = _collateral("tdx/tdx_quote_v5_outdated_collateral.json")
    with pytest.raises(TcbStatusError, match="no TCB level"):
        verify_dcap(read("tdx/tdx_quote_v5_outdated.bin"), collateral=col, at=TDX_V5_OUTDATED_AT)
    # without collateral the signatures and chain still verify (and there is no status)
    r = verify_dcap(read("tdx/tdx_quote_v5_outdated.bin"), at=TDX_V5_OUTDATED_AT)
    assert r.tcb_status is None and r.details["quote_version"] == 5
    assert r.measurement.startswith("273828c46252fcbdd8ad2dd907130222")


@pytest.mark.parametrize(
    ("rel", "platform", "debug", "mr"),
    [
        (
            "sgx/trustee_occlum_sgx_quote_v3_debug.bin",
            Platform.sgx,
            True,
            "8f173e4613ff05c52aaf04162d234edae8c9977eae47eb2299ae16a553011c68",
        ),
        (
            "tdx/trustee_tdx_quote_v4_debug_td.bin",
            Platform.tdx,
            True,
            "705ee9381b8633a9fbe532b52345e8433343d2868959f57889d84ca377c395b689cac1599ccea1b7d420483a9ce5f031",
        ),
        (
            "tdx/trustee_tdx_quote_v5.bin",
            Platform.tdx,
            False,
            "dfba221b48a22af8511542ee796603f37382800840dcd978703909bf8e64d4c8a1e9de86e7c9638bfcba422f3886400a",
        ),
        (
            "tdx/tdx_quote_v4_tappd.hex",
            Platform.tdx,
            False,
            "c68518a0ebb42136c12b2275164f8c72f25fa9a34392228687ed6e9caeb9c0f1dbd895e9cf475121c029dc47e70e91fd",
        ),
        (
            "tdx/tdx_quote_v4_dstack.hex",
            Platform.tdx,
            False,
            "7ba9e262ce6979087e34632603f354dd8f8a870f5947d116af8114db6c9d0d74c48bec4280e5b4f4a37025a10905bb29",
        ),
        (
            "tdx/trustee_tdx_quote_v4_fmspc00a06d080000.bin",
            Platform.tdx,
            False,
            "21e8dead92d6c69d7cbba79816686c03a48485c7df0c11f6f04792d5e1d378f6b8c46615ba6946adccac6becffbb1e88",
        ),
    ],
)
def test_quotes_without_collateral_check_signatures_but_get_no_tcb_status(
    rel: str, platform: Platform, debug: bool, mr: str
) -> None:
    r = verify_dcap(read(rel), at=TRUSTEE_TDX_AT)
    assert r.platform is platform and r.debug is debug and r.measurement == mr
    assert r.tcb_status is None and r.advisory_ids == ()
    assert {
        "pck_chain",
        "qe_report_signature",
        "qe_binds_attestation_key",
        "quote_signature",
    } <= set(r.checks)
    assert "tcb_level" not in r.checks


def test_trustee_tdx_quote_with_partial_pcs_collateral() -> None:
    chain = load_pem_certificates(
        json.loads(read("tdx/tdx_quote_v4_collateral.json"))["tcb_info_issuer_chain"]
    )
    col = Collateral.from_pcs(
        read("tdx/trustee_tcb_info_fmspc00a06d080000.json"),
        read("tdx/trustee_td_qe_identity.json"),
        chain,
    )
    r = verify_dcap(
        read("tdx/trustee_tdx_quote_v4_fmspc00a06d080000.bin"), collateral=col, at=TRUSTEE_TDX_AT
    )
    assert r.details["crl_checked"] is False and "crl" not in r.checks
    assert r.details["tdx_module"] == "TDX_03"
    assert r.details["tdx_module_tcb_status"] == "UpToDate"
    assert r.tcb_status is not None
    assert (r.valid_from, r.valid_until) == (t("2025-10-28T06:45:09"), t("2025-11-26T13:07:17"))
    with pytest.raises(NotValidAtTimeError):
        verify_dcap(
            read("tdx/trustee_tdx_quote_v4_fmspc00a06d080000.bin"),
            collateral=col,
            at=t("2025-11-26T13:07:18"),
        )
    # the TCB info of another platform (FMSPC) does not apply
    with pytest.raises(BindingError, match="FMSPC"):
        verify_dcap(read("tdx/tdx_quote_v4.bin"), collateral=col, at=TRUSTEE_TDX_AT)


def test_sgx_collateral_does_not_apply_to_a_tdx_quote() -> None:
    with pytest.raises(AttestationError):
        verify_dcap(
            read("tdx/tdx_quote_v4.bin"),
            collateral=_collateral("sgx/sgx_quote_v3_collateral.json"),
            at=SGX_AT,
        )


@pytest.mark.parametrize("rel", ["sgx/sgx_quote_v3.bin", "tdx/tdx_quote_v4.bin"])
def test_every_flipped_byte_of_a_quote_fails(rel: str) -> None:
    raw = read(rel)
    for i in range(0, len(raw), 3):
        bad = bytearray(raw)
        bad[i] ^= 0x10
        with pytest.raises(AttestationError):
            verify_dcap(bytes(bad), at=SGX_AT)


def test_quote_flips_give_specific_errors() -> None:
    raw = read("sgx/sgx_quote_v3.bin")

    def flip(i: int) -> bytes:
        bad = bytearray(raw)
        bad[i] ^= 0x01
        return bytes(bad)

    with pytest.raises(SignatureError, match="quote"):
        verify_dcap(flip(48 + 64), at=SGX_AT)  # MRENCLAVE
    with pytest.raises(SignatureError, match="QE report"):
        verify_dcap(flip(48 + 384 + 4 + 64 + 64 + 10), at=SGX_AT)  # QE report body
    with pytest.raises(EvidenceFormatError, match="version"):
        verify_dcap(b"\x07" + raw[1:], at=SGX_AT)
    with pytest.raises(EvidenceFormatError, match="size"):
        verify_dcap(raw[:600], at=SGX_AT)


def test_quote_with_wrong_root_or_swapped_pck() -> None:
    fake_root = _self_signed("Intel SGX Root CA", ec.SECP256R1())
    with pytest.raises(UntrustedRootError):
        verify_dcap(read("sgx/sgx_quote_v3.bin"), at=SGX_AT, root=fake_root)
    # swap the PCK chain of the SGX quote for the debug quote's chain (same length PEMs differ,
    # so rebuild the certification data): the QE report signature no longer verifies
    raw = read("sgx/sgx_quote_v3.bin")
    other = read("sgx/trustee_occlum_sgx_quote_v3_debug.bin")
    start = raw.find(b"-----BEGIN")
    ostart = other.find(b"-----BEGIN")
    pem = other[ostart:]
    head = bytearray(raw[:start])
    size_at = start - 4
    head[size_at:start] = len(pem).to_bytes(4, "little")
    sig_len_at = 48 + 384
    sig_len = len(head) - sig_len_at - 4 + len(pem)
    head[sig_len_at : sig_len_at + 4] = sig_len.to_bytes(4, "little")
    with pytest.raises(SignatureError, match="QE report"):
        verify_dcap(bytes(head) + pem, at=SGX_AT)


def test_tampered_collateral_fails() -> None:
    doc = json.loads(read("sgx/sgx_quote_v3_collateral.json"))
    doc["tcb_info"] = doc["tcb_info"].replace('"svn":11', '"svn":10', 1)
    with pytest.raises(SignatureError, match="TCB info"):
        verify_dcap(
            read("sgx/sgx_quote_v3.bin"),
            collateral=Collateral.from_qvl_json(json.dumps(doc)),
            at=SGX_AT,
        )
    doc = json.loads(read("sgx/sgx_quote_v3_collateral.json"))
    crl = bytearray(bytes.fromhex(doc["pck_crl"]))
    crl[-5] ^= 1
    doc["pck_crl"] = crl.hex()
    with pytest.raises(SignatureError, match="CRL"):
        verify_dcap(
            read("sgx/sgx_quote_v3.bin"),
            collateral=Collateral.from_qvl_json(json.dumps(doc)),
            at=SGX_AT,
        )


def test_tcb_verdicts_match_dcap_qvl() -> None:
    """Independent cross-check: Phala's Rust verifier (dcap-qvl wheel) on the same inputs."""
    import dcap_qvl

    for quote, col, at in [
        ("sgx/sgx_quote_v3.bin", "sgx/sgx_quote_v3_collateral.json", SGX_AT),
        ("tdx/tdx_quote_v4.bin", "tdx/tdx_quote_v4_collateral.json", TDX_V4_AT),
    ]:
        j = json.loads(read(col))
        qvl_col = dcap_qvl.QuoteCollateralV3(
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
        theirs = dcap_qvl.verify(read(quote), qvl_col, int(at.timestamp()))
        ours = verify_dcap(read(quote), collateral=_collateral(col), at=at)
        assert ours.tcb_status is not None
        assert ours.tcb_status.value == theirs.status
        assert list(ours.advisory_ids) == list(theirs.advisory_ids)


# ----------------------------------------------------------------------------- SEV-SNP


def _der(rel: str) -> x509.Certificate:
    return load_der_certificate(read(rel))


SNP = {
    "virtee_milan_report.hex": (
        "virtee_milan_vcek.der",
        SNP_NOW,
        False,
        "7a1e5c266c0108dbc9bb94fa926951320940915d0aafb42464bd88b579ea158d3e1a0dc39b2c60bd95b9c480cd81841f",
    ),
    "gosevguest_milan_report.bin": (
        "gosevguest_milan_vcek.der",
        SNP_NOW,
        True,
        "b07af9620f3b839b47996422ddec6058338951d984e312115131ea82705eaf5b6bdf8a9ece31a5a608eb0cf2e4872b01",
    ),
    "trustee_milan_report.bin": (
        "trustee_milan_vcek.der",
        SNP_NOW,
        False,
        "a1f3930413247bb38cfc171579ea3c12d5fe4901f0c792f63fd75d98f1ef827c23500644e0e692e6be917f9050d3d38c",
    ),
    "trustee_milan_vlek_report.bin": (
        "trustee_milan_vlek.der",
        VLEK_AT,
        False,
        "8922ebbdd00ec2c541f36a6e7a82a8773a7accb451ed67bc94e740dbe92c93c4e8c9af857f5ceeb5a493df2a570d7bf0",
    ),
}


@pytest.mark.parametrize("name", sorted(SNP))
def test_snp_reports_verify(name: str) -> None:
    key, at, debug, measurement = SNP[name]
    r = verify_snp(read(f"sev-snp/{name}"), [_der(f"sev-snp/{key}")], at=at)
    assert r.platform is Platform.snp and r.measurement == measurement and r.debug is debug
    assert r.details["product"] == "Milan"


def test_snp_fields() -> None:
    r = verify_snp(
        read("sev-snp/gosevguest_milan_report.bin"),
        [_der("sev-snp/gosevguest_milan_vcek.der")],
        at=SNP_NOW,
    )
    assert r.report_data == bytes([1, 2, 3, 4, 5]) + bytes(59)
    assert (
        r.details["report_id"] == "8edc638e1857c555d21f6b11bda3c8b1b5a09dba4852b4c8ee7aa2f16f22cc0a"
    )
    assert r.details["policy"] == "0xb0000"
    assert r.details["reported_tcb"] == {"bootloader": 2, "tee": 0, "snp": 5, "microcode": 68}
    v = verify_snp(
        read("sev-snp/trustee_milan_vlek_report.bin"),
        [_der("sev-snp/trustee_milan_vlek.der")],
        at=VLEK_AT,
    )
    assert v.details["signing_key"] == "vlek" and v.details["vmpl"] == 1
    assert v.details["version"] == 3


def test_snp_vlek_expired_now() -> None:
    with pytest.raises(NotValidAtTimeError, match="SEV-VLEK"):
        verify_snp(
            read("sev-snp/trustee_milan_vlek_report.bin"),
            [_der("sev-snp/trustee_milan_vlek.der")],
            at=SNP_NOW,
        )


def test_snp_flipping_any_signed_byte_fails() -> None:
    raw = bytes.fromhex(read("sev-snp/virtee_milan_report.hex").decode())
    vcek = [_der("sev-snp/virtee_milan_vcek.der")]
    bad = bytearray(raw)
    bad[21] ^= 0x01  # virtee's own tamper test flips byte 21
    with pytest.raises(SignatureError):
        verify_snp(bytes(bad), vcek, at=SNP_NOW)
    for i in range(len(raw)):  # every byte
        bad = bytearray(raw)
        bad[i] ^= 0x04
        with pytest.raises(AttestationError):
            verify_snp(bytes(bad), vcek, at=SNP_NOW)


def test_snp_wrong_vcek_and_wrong_root() -> None:
    report = read("sev-snp/trustee_milan_report.bin")
    with pytest.raises(BindingError):  # another chip's VCEK: hwID differs
        verify_snp(report, [_der("sev-snp/virtee_milan_vcek.der")], at=SNP_NOW)
    # several candidates: the matching one is chosen
    every = [_der(p.relative_to(DATA).as_posix()) for p in sorted((DATA / "sev-snp").glob("*.der"))]
    assert verify_snp(report, every, at=SNP_NOW).measurement.startswith("a1f393")
    fake = _self_signed("ARK-Milan")
    with pytest.raises(UntrustedRootError):
        verify_snp(
            report, [_der("sev-snp/trustee_milan_vcek.der")], at=SNP_NOW, roots={"Milan": fake}
        )
    # a chain given with the Turin ASK does not certify a Milan VCEK
    turin_ask = load_pem_certificates(read("sev-snp/amd_turin_ask_ark.pem"))[0]
    with pytest.raises(CertificateChainError):
        verify_snp(
            report,
            [_der("sev-snp/trustee_milan_vcek.der")],
            at=SNP_NOW,
            chain=[_rename(turin_ask, "SEV-Milan")],
        )


def _rename(cert: x509.Certificate, cn: str) -> x509.Certificate:
    key = ec.generate_private_key(ec.SECP384R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(cert.issuer)
        .public_key(key.public_key())
        .serial_number(2)
        .not_valid_before(cert.not_valid_before_utc)
        .not_valid_after(cert.not_valid_after_utc)
        .sign(key, hashes.SHA384())
    )


def test_turin_vcek_chains_to_the_turin_ark() -> None:
    from privfin.tee._x509 import verify_chain

    ask = load_pem_certificates(read("sev-snp/amd_turin_ask_ark.pem"))[0]
    verify_chain([_der("sev-snp/virtee_turin_vcek.der"), ask], pinned(AMD_ARK_TURIN), SNP_NOW, "t")
    with pytest.raises(UntrustedRootError):
        verify_chain(
            [_der("sev-snp/virtee_turin_vcek.der"), ask], pinned(AMD_ARK_MILAN), SNP_NOW, "t"
        )


def test_snp_malformed_report() -> None:
    vcek = [_der("sev-snp/virtee_milan_vcek.der")]
    with pytest.raises(EvidenceFormatError):
        verify_snp(b"\x00" * 100, vcek, at=SNP_NOW)
    raw = bytearray(bytes.fromhex(read("sev-snp/virtee_milan_report.hex").decode()))
    raw[0x34] = 2  # signature algorithm
    with pytest.raises(EvidenceFormatError, match="algorithm"):
        verify_snp(bytes(raw), vcek, at=SNP_NOW)


def test_evidence_hashes_match_readme() -> None:
    assert hashlib.sha256(read("sgx/sgx_quote_v3.bin")).hexdigest() == (
        "f8b81014b6e443609746822194910f5dc1c92c322fa0584298d1e33e505ca3b5"
    )
    assert hashlib.sha256(read("nitro/evervault_2022-10-13_production.cbor")).hexdigest() == (
        "a72552688ab6de06b9039ebda2bd5ae9285860ec886f841da94351681dfb3eb6"
    )


def test_the_pinned_nitro_root_is_the_one_in_aws_published_zip() -> None:
    import io
    import zipfile

    raw = read("nitro/AWS_NitroEnclaves_Root-G1.zip")
    assert hashlib.sha256(raw).hexdigest() == (
        "8cf60e2b2efca96c6a9e71e851d00c1b6991cc09eadbe64a6a1d1b1eb9faff7c"
    )
    with zipfile.ZipFile(io.BytesIO(raw)) as z:
        pem = z.read("root.pem")
    assert load_pem_certificates(pem)[0] == pinned(AWS_NITRO_ROOT_G1)
