"""RR22 PSI (protocol="rr22", silent VOLE + OKVS): exact agreement with Python sets (empty,
one, identical, disjoint, duplicates, unicode, random), alignment, the CLI, determinism, and
tamper tests (malformed messages abort; a well-formed wrong VOLE message is the semi-honest
limit)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import typer
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

import privfin.psi as psi
from privfin.cli.psi import psi as cli_psi
from privfin.errors import ConfigError, DecodeError, ProtocolAbort
from privfin.federation import codec
from privfin.federation.memory import MemoryHub, MemoryTransport
from privfin.psi import rr22, rr22_receiver, rr22_sender
from privfin.psi.messages import (
    Chunk,
    Rr22Extend,
    Rr22Reply,
    Rr22Setup,
    Rr22Table,
    Rr22Values,
    Rr22Vole,
)
from privfin.runtime import simulate as run_simulation

from .test_kkrt import CASES, make_sets


def rr22_simulate(a: list[str], b: list[str], **kw: Any) -> dict[str, Any]:
    return psi.simulate({"r": a, "s": b}, protocol="rr22", **kw)


@pytest.mark.parametrize("case", sorted(CASES))
def test_matches_set_intersection(case: str) -> None:
    a, b = CASES[case]
    out = rr22_simulate(a, b, seed=1)
    expected = sorted(set(a) & set(b))
    assert out == {"r": expected, "s": expected}


def test_receiver_only_and_same_as_kkrt() -> None:
    a, b = make_sets(500, 700, 321, seed=4)
    out = rr22_simulate(a, b, reveal_to="receiver")
    assert out == {"r": sorted(set(a) & set(b))}
    assert psi.simulate({"r": a, "s": b}, protocol="kkrt", reveal_to="receiver") == out


@settings(max_examples=8, deadline=None)
@given(
    st.lists(st.text(max_size=5), max_size=15),
    st.lists(st.text(max_size=5), max_size=15),
)
def test_property_exact_agreement(a: list[str], b: list[str]) -> None:
    b = b + a[: len(a) // 2]
    expected = sorted(set(a) & set(b))
    assert rr22_simulate(a, b) == {"r": expected, "s": expected}


def test_many_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    for role in (rr22_receiver, rr22_sender):
        monkeypatch.setattr(role, "CHUNK_ROWS", 37)
    a, b = make_sets(700, 400, 150, seed=6)
    expected = sorted(set(a) & set(b))
    assert rr22_simulate(a, b) == {"r": expected, "s": expected}


def test_component_aligns_tables() -> None:
    ta = pd.DataFrame({"cid": ["c3", "c1", "c2", "c9"], "income": [3, 1, 2, 9]})
    tb = pd.DataFrame({"cid": ["c2", "c5", "c3", "c1 "], "score": [20, 50, 30, 10]})
    out = run_simulation(
        psi.psi_component,
        {"bank": ("receiver",), "telco": ("sender",)},
        params={"protocol": "rr22", "reveal_to": "both", "id_column": "cid"},
        inputs={"bank": {"table": ta}, "telco": {"table": tb}},
    )
    assert out["bank"]["keys"] == out["telco"]["keys"] == ["c1", "c2", "c3"]
    assert out["bank"]["table"]["income"].tolist() == [1, 2, 3]
    assert out["telco"]["table"]["score"].tolist() == [10, 20, 30]
    assert "psi.seconds.vole" in out["bank"]["stats"]


@pytest.mark.parametrize("protocol", ["rr22", "ecdh"])
def test_rows_output_is_the_aligned_rows_without_ids(protocol: str) -> None:
    """[16] ``output: rows`` (what ``privfin psi`` asks for): the same rows, size and table
    rows, no ids or keys; a local parameter (not in the handshake); a bad value refused."""
    from privfin.psi._prepare import PsiParams

    ta = pd.DataFrame({"cid": ["c3", "c1", "c2", "c9"], "income": [3, 1, 2, 9]})
    tb = pd.DataFrame({"cid": ["c2", "c5", "c3", "c1 "], "score": [20, 50, 30, 10]})
    outs = [
        run_simulation(
            psi.psi_component,
            {"bank": ("receiver",), "telco": ("sender",)},
            params={"protocol": protocol, "reveal_to": "both", "id_column": "cid", **extra},
            inputs={"bank": {"table": ta}, "telco": {"table": tb}},
        )
        for extra in ({}, {"output": "rows"})
    ]
    for party in ("bank", "telco"):
        full, rows = outs[0][party], outs[1][party]
        assert rows["rows"] == full["rows"] and rows["size"] == full["size"] == 3
        assert rows["ids"] is None and rows["keys"] is None and full["keys"] == ["c1", "c2", "c3"]
        assert rows["table"].equals(full["table"])
    base = {"protocol": protocol, "id_column": "cid"}
    assert (
        PsiParams.from_mapping({**base, "output": "rows"}).agreed()
        == PsiParams.from_mapping(base).agreed()
    )
    with pytest.raises(ConfigError, match="output must be one of"):
        PsiParams.from_mapping({**base, "output": "ids"})


def test_refused_configurations() -> None:
    with pytest.raises(ConfigError, match="exactly two parties"):
        psi.simulate({"a": ["x"], "b": ["x"], "c": ["x"]}, protocol="rr22")
    with pytest.raises(ConfigError, match="size only"):
        psi.simulate({"a": ["x"], "b": ["x"]}, protocol="rr22", cardinality_only=True)


def test_wire_carries_no_ids_and_is_small() -> None:
    a, b = make_sets(300, 300, 100, seed=9)
    b = [*b, "SECRET-sender-id"]
    hub = MemoryHub()
    rr22_simulate(a, b, reveal_to="receiver", hub=hub)
    wire = b"".join(p for _, p in hub.wire)
    for ident in a + b:
        assert ident.encode() not in wire
    # receiver -> sender: the masked OKVS (16 bytes per slot) and IKNP's u dominate
    sent_r = sum(len(p) for k, p in hub.wire if k.sender == "r")
    assert sent_r < 16 * rr22.slots(300) + 16 * rr22.vole_params(300, bytes(16)).padded_ots + (
        64 << 10
    )


def test_deterministic_under_a_seed() -> None:
    a, b = make_sets(50, 40, 10, seed=2)
    wires = []
    for seed in (11, 11, 12):
        hub = MemoryHub()
        rr22_simulate(a, b, hub=hub, seed=seed)
        wires.append({who: [p for k, p in hub.wire if k.sender == who] for who in ("r", "s")})
    assert wires[0] == wires[1] != wires[2]


# ------------------------------------------------------------------------------ tamper


def _tampering(tag: str, forge: Any, **kw: Any) -> dict[str, Any]:
    original = MemoryTransport.send

    def send(self: MemoryTransport, key, payload):  # type: ignore[no-untyped-def]
        if key.tag == tag:
            payload = forge(codec.decode(payload))
        return original(self, key, payload)

    MemoryTransport.send = send  # type: ignore[method-assign]
    try:
        return rr22_simulate(["a", "b", "c"], ["b", "c", "d"], **kw)
    finally:
        MemoryTransport.send = original  # type: ignore[method-assign]


def test_tampered_base_ot_points_abort() -> None:
    def forge(msg: Rr22Reply) -> bytes:
        pts = bytearray(msg.points)
        pts[:32] = b"\xff" * 32
        return codec.encode(Rr22Reply(points=bytes(pts), share=msg.share))

    with pytest.raises(ProtocolAbort, match="base-OT reply refused"):
        _tampering("rr22.reply", forge)


def test_tampered_base_ot_setup_point_aborts() -> None:
    """[16] The sender's side of the shared base-OT set-up refuses an invalid point too."""

    def forge(msg: Rr22Setup) -> bytes:
        return codec.encode(Rr22Setup(point=b"\xff" * 32, share=msg.share))

    with pytest.raises(ProtocolAbort, match="base-OT point refused"):
        _tampering("rr22.setup", forge)


def test_wrong_extension_size_aborts() -> None:
    def forge(msg: Rr22Extend) -> bytes:
        ots = msg.ots + 128
        return codec.encode(Rr22Extend(ots=ots, u=bytes(16 * ots)))

    with pytest.raises(ProtocolAbort, match="extended"):
        _tampering("rr22.u", forge)


def test_wrong_vole_shape_aborts() -> None:
    def forge(msg: Rr22Vole) -> bytes:
        t = msg.trees - 1
        return codec.encode(
            Rr22Vole(
                trees=t,
                depth=msg.depth,
                masked=msg.masked[: t * msg.depth * 32],
                sums=msg.sums[: 16 * t],
            )
        )

    with pytest.raises(ProtocolAbort, match="VOLE of"):
        _tampering("rr22.vole", forge)


def test_wrong_table_size_and_chunks_abort() -> None:
    def forge_slots(msg: Rr22Table) -> bytes:
        return codec.encode(Rr22Table(seed=msg.seed, slots=msg.slots + 1))

    with pytest.raises(ProtocolAbort, match="OKVS slots"):
        _tampering("rr22.table", forge_slots)

    def forge_chunk(msg: Chunk) -> bytes:
        return codec.encode(Chunk(offset=msg.offset, rows=msg.rows[:-1].copy()))

    with pytest.raises(ProtocolAbort, match="table rows"):
        _tampering("rr22.masked", forge_chunk)


def test_tampered_values_abort_or_fail_decoding() -> None:
    def forge(msg: Rr22Values) -> bytes:
        wider = np.concatenate([msg.rows, msg.rows[:, :1]], axis=1)
        return codec.encode(Rr22Values(offset=msg.offset, rows=wider))

    with pytest.raises(ProtocolAbort, match="values at offset"):
        _tampering("rr22.values", forge)

    def truncate(msg: Rr22Values) -> bytes:
        return codec.encode(msg)[:-5]

    with pytest.raises(DecodeError):
        _tampering("rr22.values", truncate)
    with pytest.raises(ValueError, match="wrong length"):
        Rr22Vole(trees=2, depth=3, masked=bytes(191), sums=bytes(32))
    with pytest.raises(ValueError, match="wrong length"):
        Rr22Extend(ots=128, u=bytes(100))


def test_a_wrong_vole_message_is_the_semi_honest_limit() -> None:
    """A well-formed but wrong VOLE message from the sender is not detected: the receiver's
    correlations are wrong and it loses matches (SPEC.md §8b names the check that would
    catch it)."""

    def forge(msg: Rr22Vole) -> bytes:
        masked = np.frombuffer(msg.masked, np.uint8).reshape(msg.trees, msg.depth, 2, 16).copy()
        # level 0 of every tree, a different change per tree: half of every tree's leaves are
        # wrong by independent amounts, so every output of the VOLE is (a constant change
        # would cancel in half of them)
        masked[:, 0] ^= np.random.default_rng(0).integers(1, 256, masked[:, 0].shape, np.uint8)
        return codec.encode(
            Rr22Vole(trees=msg.trees, depth=msg.depth, masked=masked.tobytes(), sums=msg.sums)
        )

    assert rr22_simulate(["a", "b", "c"], ["b", "c", "d"], reveal_to="receiver") == {
        "r": ["b", "c"]
    }
    assert _tampering("rr22.vole", forge, reveal_to="receiver") == {"r": []}


# ------------------------------------------------------------------------------ CLI


def test_cli_protocol_rr22(tmp_path: Path) -> None:
    pd.DataFrame({"id": ["a", "b", " c", "d"], "x": [1, 2, 3, 4]}).to_csv(
        tmp_path / "a.csv", index=False
    )
    pd.DataFrame({"id": ["c", "b", "z"], "y": [30, 20, 0]}).to_csv(tmp_path / "b.csv", index=False)
    app = typer.Typer()
    app.command()(cli_psi)
    out = tmp_path / "out"
    args = ["--party", f"A={tmp_path / 'a.csv'}", "--party", f"B={tmp_path / 'b.csv'}"]
    args += ["--out", str(out), "--protocol", "rr22", "--transport", "memory"]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    assert pd.read_csv(out / "A.csv")["x"].tolist() == [2, 3]
    assert pd.read_csv(out / "B.csv")["y"].tolist() == [20, 30]
    assert json.loads((out / "summary.json").read_text())["A"]["size"] == 2


def test_pure_paths_without_the_kernel(monkeypatch: pytest.MonkeyPatch) -> None:
    """Where the C kernel is not built: the same protocol on the numpy/Python paths."""
    from privfin.crypto import gf128, okvs, vole

    for mod in (okvs, vole, gf128):
        monkeypatch.setattr(mod, "KERNEL", False)
    a, b = make_sets(400, 300, 120, seed=8)
    expected = sorted(set(a) & set(b))
    assert rr22_simulate(a, b) == {"r": expected, "s": expected}


def test_parameters_fit_the_message_bounds() -> None:
    from privfin.psi.messages import RR22_MAX_DEPTH, RR22_MAX_OTS, RR22_MAX_TREES

    for n in (0, 1, 10**6, 10**8, 8 * 10**8):
        p = rr22.vole_params(n, bytes(16))
        assert p.n == rr22.slots(n) >= n
        assert p.trees <= RR22_MAX_TREES and p.depth <= RR22_MAX_DEPTH
        assert p.padded_ots <= RR22_MAX_OTS
    with pytest.raises(ValueError, match="too large"):  # N' must stay below 2^32
        rr22.vole_params(10**9, bytes(16))
