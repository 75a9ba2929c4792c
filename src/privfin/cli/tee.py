"""``privfin tee``: check TEE attestation evidence by hand.

``privfin tee verify EVIDENCE --platform sgx|tdx|snp|nitro [--collateral PATH] [--at TIME]``
prints the verified :class:`~privfin.tee.result.AttestationResult` as JSON and exits 0, or
prints the precise error (its class, code and message) as JSON and exits 1.
"""

from __future__ import annotations

import json
import sys
from datetime import datetime
from pathlib import Path

import typer

app = typer.Typer(help="Confidential computing: verify attestation evidence.", no_args_is_help=True)

__all__ = ["app"]

_PLATFORMS = ("sgx", "tdx", "snp", "nitro")


def _fail(kind: str, code: str, message: str) -> None:
    typer.echo(json.dumps({"ok": False, "error": kind, "code": code, "message": message}, indent=2))
    raise typer.Exit(1)


@app.command("verify")
def verify_cmd(
    evidence: Path = typer.Argument(
        ..., help="the quote / report / attestation document (raw, hex or base64)"
    ),
    platform: str = typer.Option(..., "--platform", help="sgx, tdx, snp or nitro"),
    collateral: Path | None = typer.Option(
        None,
        "--collateral",
        help="sgx/tdx: a dcap-qvl collateral JSON file, or a directory with tcb_info.json, "
        "qe_identity.json, tcb_signing_chain.pem [pck_crl.der, root_ca_crl.der]; snp: the "
        "VCEK/VLEK (DER or PEM) or a directory of certificates (VCEK/VLEK, ASK/ASVK)",
    ),
    at: str | None = typer.Option(
        None, "--at", help="verify as of this ISO 8601 time (UTC if no offset); default now"
    ),
) -> None:
    """Verify a piece of attestation evidence offline against the pinned vendor roots."""
    from privfin.errors import PrivfinError
    from privfin.tee.errors import AttestationError
    from privfin.tee.result import Platform, utc

    if platform not in _PLATFORMS:
        _fail("UsageError", "usage", f"--platform must be one of {', '.join(_PLATFORMS)}")
    when = None
    if at is not None:
        try:
            when = utc(datetime.fromisoformat(at.replace("Z", "+00:00")))
        except ValueError:
            _fail("UsageError", "usage", f"--at is not an ISO 8601 time: {at!r}")
    try:
        data = evidence.read_bytes()
    except OSError as exc:
        _fail("UsageError", "usage", f"cannot read {evidence}: {exc.strerror}")
    try:
        from privfin.tee.dcap import Collateral
        from privfin.tee.verify import Evidence, load_amd_certificates, verify_evidence

        col = None
        certs: tuple[object, ...] = ()
        if collateral is not None:
            if not collateral.exists():
                _fail("UsageError", "usage", f"--collateral {collateral} does not exist")
            if platform in ("sgx", "tdx"):
                col = Collateral.load(collateral)
            elif platform == "snp":
                certs = load_amd_certificates(collateral)
        if platform == "snp" and not certs:
            _fail("UsageError", "usage", "snp needs --collateral with the VCEK or VLEK")
        result = verify_evidence(
            Evidence(Platform(platform), data, col, certs),  # type: ignore[arg-type]
            at=when,
        )
    except AttestationError as exc:
        _fail(type(exc).__name__, exc.code, str(exc))
    except OSError as exc:
        _fail("UsageError", "usage", f"cannot read the collateral: {exc}")
    except PrivfinError as exc:
        _fail(type(exc).__name__, "error", str(exc))
    out = {"ok": True, **result.to_json()}
    typer.echo(json.dumps(out, indent=2))
    sys.stdout.flush()
