"""``privfin audit``: check and export a node's audit log.

``privfin audit verify --config node.yaml`` walks the node's hash chain (and checks its signed
checkpoints with the node's certificate, and any signed heads given with ``--against`` or
``--head``); ``privfin audit export --config node.yaml --out DIR|FILE.zip [--job J]`` writes a
signed evidence bundle; ``privfin audit verify-bundle PATH [--cert CERT]`` checks a bundle
offline; ``privfin audit seal --config node.yaml`` appends a signed checkpoint and prints its
head (give it to peers). Exit code 0: verified; 1: verification failed; 2: a usage error.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from privfin.cli._errors import one_line_errors

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric import ec

    from privfin.audit import AuditLog
    from privfin.node.config import NodeConfig

__all__ = ["app"]

app = typer.Typer(
    help="Audit log: verify the hash chain, export and check evidence bundles.",
    no_args_is_help=True,
    add_completion=False,
)

ConfigOpt = Annotated[Path, typer.Option("--config", "-c", help="the node's node.yaml")]


@app.callback()
def _group() -> None:
    """Audit log: verify the hash chain, export and check evidence bundles."""


@contextmanager
def _open_log(config: NodeConfig) -> Iterator[AuditLog]:
    """The node's audit log on its store; the engine is closed after."""
    from privfin.audit import AuditLog
    from privfin.store import open_engine

    engine = open_engine(config.store_url())
    try:
        yield AuditLog(engine, node=config.party)
    finally:
        engine.dispose()


def _identity_key(config: NodeConfig) -> ec.EllipticCurvePrivateKey:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    from privfin.errors import ConfigError

    try:
        key = serialization.load_pem_private_key(config.key.read_bytes(), None)
    except (OSError, ValueError, TypeError) as exc:
        raise ConfigError(f"cannot read the node's key {config.key}: {exc}") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ConfigError(f"the node's key {config.key} is not an ECDSA key")
    return key


def _certificate(path: Path) -> bytes:
    from privfin.errors import ConfigError

    try:
        return path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read certificate {path}: {exc.strerror}") from None


def _public_key(pem: bytes) -> ec.EllipticCurvePublicKey:
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import ec

    from privfin.errors import ConfigError

    try:
        key = x509.load_pem_x509_certificate(pem).public_key()
    except ValueError as exc:
        raise ConfigError(f"the node's certificate is not a PEM certificate: {exc}") from None
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise ConfigError("the node's certificate does not hold an ECDSA key")
    return key


@contextmanager
def _progress(label: str) -> Iterator[Callable[[int, int], None]]:
    """A progress bar on a terminal's stderr (nothing otherwise)."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    console = Console(stderr=True)
    with Progress(
        f"[bold]{label}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
        disable=not console.is_terminal,
    ) as bar:
        task = bar.add_task(label, total=None)

        def update(done: int, total: int) -> None:
            bar.update(task, completed=done, total=max(total, done))

        yield update


@app.command("verify")
def verify_cmd(
    config: ConfigOpt,
    against: Annotated[
        list[Path] | None,
        typer.Option(
            "--against",
            help="a signed bundle this node exported earlier (e.g. a peer's copy): the log must "
            "still contain its head (repeatable)",
        ),
    ] = None,
    head: Annotated[
        list[Path] | None,
        typer.Option("--head", help="a signed head (JSON from privfin audit seal) (repeatable)"),
    ] = None,
) -> None:
    """Check the node's audit chain; report the first edited, deleted, moved or cut entry.

    Checkpoints are checked with the node's certificate, and the log against the signed heads
    of --against bundles, --head files and the node's own heads file (audit.heads_file)."""
    from privfin.audit import SignedHead, bundle_evidence
    from privfin.audit.sealer import read_heads
    from privfin.errors import ConfigError
    from privfin.node.config import load_config

    with one_line_errors():
        cfg = load_config(config)
        cert = _certificate(cfg.cert)
        key = _public_key(cert)
        heads: list[SignedHead] = []
        known: dict[int, str] = {}
        for p in against or []:
            signed, hashes = bundle_evidence(p, certificate=cert)
            heads.append(signed)
            for seq, h in hashes.items():
                if known.setdefault(seq, h) != h:
                    raise ConfigError(f"bundle {p} disagrees with another bundle on seq {seq}")
        for p in head or []:
            try:
                heads.append(SignedHead.from_dict(json.loads(p.read_text())))
            except ValueError as exc:
                raise ConfigError(f"{p} is not a signed audit head: {exc}") from None
        # the heads the node sealed itself (at job ends and on a timer), outside the database
        heads.extend(read_heads(cfg.heads_file()))
        with _open_log(cfg) as log, _progress("verifying") as progress:
            report = log.verify(keys=[key], heads=heads, known=known, progress=progress)
    typer.echo(str(report))
    if not report.ok:
        raise typer.Exit(1)


@app.command("export")
def export_cmd(
    config: ConfigOpt,
    out: Annotated[
        Path, typer.Option("--out", "-o", help="a new or empty directory, or a new FILE.zip")
    ],
    job: Annotated[str | None, typer.Option("--job", help="only this job's entries")] = None,
    since: Annotated[
        int | None, typer.Option("--since", min=1, help="only entries from this seq on")
    ] = None,
    unsigned: Annotated[
        bool, typer.Option("--unsigned", help="do not sign with the node's identity key")
    ] = False,
) -> None:
    """Write an evidence bundle (JR/T 0196 §7.6) signed with the node's identity key."""
    from privfin.node.config import load_config

    with one_line_errors():
        cfg = load_config(config)
        key = None if unsigned else _identity_key(cfg)
        cert = None if unsigned else _certificate(cfg.cert)
        with _open_log(cfg) as log, _progress("exporting") as progress:
            path = log.export(
                out, job=job, since=since, key=key, certificate=cert, progress=progress
            )
        from privfin.audit import verify_bundle

        report = verify_bundle(path, certificate=cert)
    typer.echo(f"bundle: {path}")
    typer.echo(str(report))
    if not report.ok:
        raise typer.Exit(1)


@app.command("verify-bundle")
def verify_bundle_cmd(
    path: Annotated[Path, typer.Argument(help="a bundle directory or .zip")],
    cert: Annotated[
        Path | None,
        typer.Option("--cert", help="the node's certificate: the bundle must be signed with it"),
    ] = None,
) -> None:
    """Check an evidence bundle offline (no node, no database)."""
    from privfin.audit import verify_bundle

    with one_line_errors():
        pem = _certificate(cert) if cert is not None else None
        with _progress("checking") as progress:
            report = verify_bundle(path, certificate=pem, progress=progress)
    typer.echo(str(report))
    if report.ok and report.signer and pem is None:
        typer.echo("compare the signer's fingerprint with the one pinned for this node")
    if not report.ok:
        raise typer.Exit(1)


@app.command("seal")
def seal_cmd(
    config: ConfigOpt,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="also write the signed head (JSON) here")
    ] = None,
) -> None:
    """Append a checkpoint signed with the node's identity key and print its signed head."""
    from privfin.node.config import load_config

    with one_line_errors():
        cfg = load_config(config)
        with _open_log(cfg) as log:
            head = log.seal(_identity_key(cfg), actor="operator")
        text = json.dumps(head.to_dict(), sort_keys=True)
        if out is not None:
            out.write_text(text + "\n")
    typer.echo(text)
