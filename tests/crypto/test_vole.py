"""Silent random VOLE over GF(2^128): C = B + A·Δ at every output across sizes and batch
boundaries, the expander's kernel against numpy, the noise, and what a tampered message does
(semi-honest: wrong correlations, not detected; see SPEC "Silent VOLE")."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from privfin.crypto import gf128, ot, vole
from privfin.crypto.random import SeededRandom

KERNELS = [False, True] if vole.KERNEL else [False]


def _extension(seed: int) -> tuple[ot.IknpReceiver, ot.IknpSender, ot.CrHash]:
    rnd = SeededRandom(seed)
    s = np.frombuffer(rnd.bytes(ot.KAPPA), np.uint8) & 1
    sender = ot.BaseOtSender(rnd)
    receiver = ot.BaseOtReceiver(rnd, s)
    k0, k1 = sender.keys(receiver.reply(sender.point))
    return ot.IknpReceiver(k0, k1), ot.IknpSender(s, receiver.keys()), ot.CrHash(rnd.bytes(16))


def _run(
    params: vole.VoleParams, seed: int, kernel: bool | None = None, tamper: str = ""
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int, vole.VoleReceiver]:
    r_ot, s_ot, h = _extension(seed)
    receiver = vole.VoleReceiver(params, SeededRandom(seed + 1), kernel=kernel)
    sender = vole.VoleSender(params, s_ot.delta, SeededRandom(seed + 2), kernel=kernel)
    u, t_rows = r_ot.extend(receiver.choices)
    msg, b = sender.respond(s_ot.extend(u), h)
    if tamper == "ggm":
        msg.masked[0, 0, 0, 3] ^= 1
        msg.masked[0, 0, 1, 3] ^= 1
    elif tamper == "sum":
        msg.sums[1, 0] ^= 0x80
    a, c = receiver.finish(t_rows, msg, h)
    return a, b, c, sender.delta_int, receiver


def _holds(a: np.ndarray, b: np.ndarray, c: np.ndarray, delta: int) -> np.ndarray:
    return (c == b ^ gf128.mul_scalar(a, delta)).all(axis=1)


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("n", [0, 1, 1_000, 70_000])
def test_every_output_is_a_vole_correlation(kernel: bool, n: int) -> None:
    params = vole.VoleParams.for_outputs(n, bytes(range(16)), min_trees=64 if n < 5_000 else 256)
    a, b, c, delta, _ = _run(params, n, kernel)
    assert a.shape == b.shape == c.shape == (n, 16)
    assert delta != 0
    assert _holds(a, b, c, delta).all()
    if n >= 1_000:
        # A and B look uniform: no zero rows, each bit set in half the rows (6 sd)
        for x in (a, b):
            assert not (x == 0).all(axis=1).any()
            ones = np.unpackbits(x, axis=1).sum(axis=0)
            assert np.all(np.abs(ones - n / 2) < 6 * np.sqrt(n / 4))


def test_parameters() -> None:
    p = vole.VoleParams.for_outputs(1_100_000, bytes(16))
    assert p.trees >= vole.MIN_TREES
    assert 4 * 1_100_000 <= p.noise_len < 4 * 1_100_000 + (1 << p.depth)
    assert p.padded_ots % 128 == 0 and p.padded_ots >= p.trees * (p.depth + 128)
    small = vole.VoleParams.for_outputs(1, bytes(16))
    assert small.trees >= vole.MIN_TREES and small.depth == 1
    with pytest.raises(ValueError):
        vole.VoleParams(10, 4, 2, 21, bytes(8))
    with pytest.raises(ValueError):
        vole.VoleParams(10, 1 << 20, 12, 21, bytes(16))


def test_noise_is_regular_with_nonzero_values() -> None:
    params = vole.VoleParams.for_outputs(100, bytes(16), min_trees=300)
    receiver = vole.VoleReceiver(params, SeededRandom(4))
    alpha, beta = receiver.noise()
    assert alpha.shape == (params.trees,) and beta.shape == (params.trees, 16)
    assert alpha.min() >= 0 and alpha.max() < 1 << params.depth
    assert not (beta == 0).all(axis=1).any()
    assert len(set(alpha.tolist())) > 1


@settings(max_examples=15, deadline=None)
@given(st.integers(1, 3_000), st.integers(1, 25), st.integers(1, 3), st.integers(0, 2**32 - 1))
def test_expander_kernel_and_numpy_give_the_same_bytes(
    n: int, weight: int, k: int, seed: int
) -> None:
    if not vole.KERNEL:
        return
    rng = np.random.default_rng(seed)
    params = vole.VoleParams(n, 8, 6, weight, rng.bytes(16))
    vecs = [rng.integers(0, 256, (params.noise_len, 16), dtype=np.uint8) for _ in range(k)]
    got = vole.ea_compress(vecs, params, kernel=True, chunk=700)
    want = vole.ea_compress(vecs, params, kernel=False, chunk=1 << 16)
    for x, y in zip(got, want, strict=True):
        assert np.array_equal(x, y)


def test_expander_definition_and_linearity() -> None:
    rng = np.random.default_rng(5)
    params = vole.VoleParams(50, 4, 5, 7, rng.bytes(16))
    x = rng.integers(0, 256, (params.noise_len, 16), dtype=np.uint8)
    y = rng.integers(0, 256, (params.noise_len, 16), dtype=np.uint8)
    (cx,) = vole.ea_compress([x], params, kernel=False)
    (cy,) = vole.ea_compress([y], params, kernel=False)
    (cxy,) = vole.ea_compress([x ^ y], params)
    assert np.array_equal(cxy, cx ^ cy)
    # row 3 from the definition: AES-CTR words, columns floor(r·N'/2^64), prefix XORs
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    enc = Cipher(algorithms.AES(params.code_seed), modes.CTR(bytes(16))).encryptor()
    words = np.frombuffer(enc.update(bytes(8 * 7 * 50)), np.uint64).reshape(50, 7)
    want = 0
    for r in words[3].tolist():
        col = r * params.noise_len >> 64
        for j in range(col + 1):
            want ^= gf128.to_int(x[j])
    assert gf128.to_int(cx[3]) == want


@settings(max_examples=50, deadline=None)
@given(st.integers(0, 2**64 - 1), st.integers(1, 2**32 - 1))
def test_column_map_is_the_exact_floor(r: int, cols: int) -> None:
    got = vole._columns(np.array([r], np.uint64), cols)
    assert int(got[0]) == r * cols >> 64


@pytest.mark.parametrize("tamper", ["ggm", "sum"])
def test_a_tampered_message_breaks_the_correlation_undetected(tamper: str) -> None:
    """Semi-honest: a changed GGM correction or tree sum gives wrong outputs (here found by
    checking with Δ, which the receiver does not have) and raises nothing; SPEC says which
    check would catch it."""
    params = vole.VoleParams.for_outputs(2_000, bytes(16), min_trees=64)
    a, b, c, delta, _ = _run(params, 9)
    assert _holds(a, b, c, delta).all()
    a2, b2, c2, delta2, _ = _run(params, 9, tamper=tamper)
    assert delta2 == delta and np.array_equal(b2, b) and np.array_equal(a2, a)
    bad = ~_holds(a2, b2, c2, delta2)
    # a GGM correction changes the leaves of one subtree (outputs that read that block); a
    # tree sum changes one leaf, so every prefix XOR after it (about half the outputs)
    assert 0.01 < bad.mean() < 0.9


def test_malformed_messages_are_refused() -> None:
    params = vole.VoleParams.for_outputs(10, bytes(16), min_trees=16)
    r_ot, s_ot, h = _extension(3)
    receiver = vole.VoleReceiver(params, SeededRandom(1))
    sender = vole.VoleSender(params, s_ot.delta, SeededRandom(2))
    u, t_rows = r_ot.extend(receiver.choices)
    q = s_ot.extend(u)
    msg, _ = sender.respond(q, h)
    short = vole.VoleMessage(masked=msg.masked[:-1], sums=msg.sums)
    with pytest.raises(ValueError, match="GGM"):
        receiver.finish(t_rows, short, h)
    with pytest.raises(ValueError, match="sums"):
        receiver.finish(t_rows, vole.VoleMessage(msg.masked, msg.sums[:, :8]), h)
    with pytest.raises(ValueError, match="shape"):
        receiver.finish(t_rows[:-1], msg, h)
    with pytest.raises(ValueError, match="shape"):
        sender.respond(q[:-128], h)
    # the split calls (message first, output later) in the wrong order or twice
    fresh = vole.VoleSender(params, s_ot.delta, SeededRandom(2))
    with pytest.raises(ValueError, match="message"):
        fresh.output()
    split = fresh.message(q, h)
    assert np.array_equal(split.masked, msg.masked)
    fresh.output()
    with pytest.raises(ValueError, match="once"):
        fresh.output()
    with pytest.raises(ValueError, match="finish_a"):
        vole.VoleReceiver(params, SeededRandom(1)).output_c()


@settings(max_examples=20, deadline=None)
@given(
    st.integers(1, 3_000),
    st.integers(1, 25),
    st.integers(1, 9),
    st.integers(1, 7),
    st.integers(0, 2**32 - 1),
)
def test_regular_noise_compresses_as_the_whole_vector(
    n: int, weight: int, trees: int, depth: int, seed: int
) -> None:
    """[16] the receiver's ``A`` from the noise offsets and values (a table of prefix sums)
    is ``ea_compress`` of the whole regular noise vector, on both paths and any chunking;
    offsets at both ends of a tree included."""
    rng = np.random.default_rng(seed)
    params = vole.VoleParams(n, trees, depth, weight, rng.bytes(16))
    alpha = rng.integers(0, 1 << depth, trees)
    alpha[0] = 0
    alpha[-1] = (1 << depth) - 1
    beta = rng.integers(0, 256, (trees, 16), dtype=np.uint8)
    e = np.zeros((params.noise_len, 16), np.uint8)
    e[(np.arange(trees) << depth) + alpha] = beta
    (want,) = vole.ea_compress([e], params, kernel=False)
    for kernel in KERNELS:
        for chunk in (333, 1 << 16):
            got = vole._compress_regular(alpha, beta, params, kernel=kernel, chunk=chunk)
            assert np.array_equal(got, want)


def test_regular_noise_offsets_out_of_their_tree_are_refused() -> None:
    params = vole.VoleParams(10, 4, 3, 5, bytes(16))
    beta = np.zeros((4, 16), np.uint8)
    for kernel in KERNELS:
        with pytest.raises(ValueError, match="outside its tree"):
            vole._compress_regular(np.array([0, 1, 8, 2]), beta, params, kernel=kernel)
        with pytest.raises(ValueError, match="one noise offset"):
            vole._compress_regular(np.array([0, 1, 2]), beta, params, kernel=kernel)
    if vole.KERNEL:  # the kernel checks on its own too
        sums = np.zeros((5, 2), np.uint64)
        out = np.zeros((10, 2), np.uint64)
        with pytest.raises(ValueError, match="out of its block"):
            vole._KERNEL.ea_gather_regular(
                bytes(8 * 5 * 10), 5, 3, np.array([0, 9, 0, 0], np.int64), sums, out
            )
        with pytest.raises(ValueError, match="sizes do not match"):
            vole._KERNEL.ea_gather_regular(bytes(8 * 5 * 9), 5, 3, np.zeros(4, np.int64), sums, out)


def test_code_words_are_the_ctr_stream_whatever_the_chunk() -> None:
    """[16] the expander's words come from one reused buffer a chunk at a time: together
    they are AES-CTR under the code seed from a zero IV, for any chunk size."""
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    params = vole.VoleParams(37, 4, 5, 7, bytes(range(16)))
    enc = Cipher(algorithms.AES(params.code_seed), modes.CTR(bytes(16))).encryptor()
    want = enc.update(bytes(8 * 7 * 37))
    for chunk in (1, 5, 36, 37, 1 << 13):
        got = b"".join(bytes(raw) for _, _, raw in vole._code_words(params, chunk))
        spans = [(s, e) for s, e, _ in vole._code_words(params, chunk)]
        assert got == want
        assert spans[0][0] == 0 and spans[-1][1] == 37
        assert all(a[1] == b[0] for a, b in itertools.pairwise(spans))
    with pytest.raises(ValueError, match="chunk"):
        list(vole._code_words(params, 0))


@pytest.mark.skipif(not vole.KERNEL, reason="the VOLE kernel is not built here")
@pytest.mark.parametrize("threads", [2, 3])
def test_expander_on_several_threads_gives_the_same_bytes(threads: int) -> None:
    """[16] the compression's rows gathered by several threads (each from its own offset in
    the key stream, odd weight included) equal the one-thread pass and the numpy path."""
    rng = np.random.default_rng(9)
    for weight in (7, 8):
        params = vole.VoleParams(vole._SPLIT_MIN + 1001, 4, 9, weight, rng.bytes(16))
        leaves = rng.integers(0, 2**63, (params.noise_len, 1, 2), dtype=np.uint64)
        (one,) = vole._compress_in_place(leaves.copy(), params, kernel=True)
        (many,) = vole._compress_in_place(leaves.copy(), params, kernel=True, threads=threads)
        (pure,) = vole._compress_in_place(leaves.copy(), params, kernel=False, threads=threads)
        assert np.array_equal(many, one) and np.array_equal(pure, one)
    with pytest.raises(ValueError, match="whole AES block"):
        list(vole._code_words(params, 8, start=params.n + 2))
    odd = vole.VoleParams(10, 4, 5, 7, bytes(16))
    with pytest.raises(ValueError, match="whole AES block"):
        list(vole._code_words(odd, 8, start=1))
