"""Identifiers of the synthetic data: customer ids, resident identity numbers, phones, names.

Everything here is vectorised over NumPy arrays (a million values in well under a second) and
takes its randomness from a caller-supplied :class:`numpy.random.Generator`, so the same seed
gives the same identifiers.

* Customer ids are strings ``C`` + 8 digits (``C00000123``) drawn from one shared space of
  ``10**8 - 1`` numbers, so every party of a scenario speaks about the same customers.
* Resident identity numbers follow the 18-character layout of GB 11643-1999: 6-digit region
  code, 8-digit birth date ``YYYYMMDD``, 3-digit sequence (odd for men, even for women) and an
  ISO 7064 MOD 11-2 check character (``0``-``9`` or ``X``).
* Mobile numbers have 11 digits and start with a real mainland-China mobile prefix.

The values are synthetic: region codes and prefixes are real, the people are not.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = [
    "ID_PREFIX",
    "ID_SPACE",
    "MOBILE_PREFIXES",
    "REGION_CODES",
    "format_codes",
    "format_customer_ids",
    "is_valid_national_id",
    "national_id_check_char",
    "national_ids",
    "national_ids_valid",
    "person_names",
    "phone_numbers",
    "unique_integers",
]

ID_PREFIX = "C"
"""First character of every customer id."""

ID_SPACE = 10**8 - 1
"""Customer-id numbers lie in ``[1, ID_SPACE]`` and are printed with 8 digits."""

_ID_DIGITS = 8

# Weights of positions 1..17 (2**(18-i) mod 11) and the check characters for a sum mod 11 of
# 0..10, as defined by ISO 7064 MOD 11-2 / GB 11643-1999.
_NID_WEIGHTS = np.array([7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2], dtype=np.int64)
_NID_CHECK = "10X98765432"
_NID_CHECK_ASCII = np.frombuffer(_NID_CHECK.encode("ascii"), dtype=np.uint8)

REGION_CODES: tuple[int, ...] = (
    110101, 110105, 110108, 120101, 130102, 140105, 210102, 220102, 230102, 310101,
    310104, 310115, 320102, 320505, 330102, 330106, 340102, 350203, 360102, 370102,
    370202, 410105, 420106, 430104, 440104, 440106, 440305, 440306, 450103, 460105,
    500103, 500112, 510104, 510107, 520102, 530102, 610113, 620102, 630102, 650102,
)  # fmt: skip
"""County-level administrative division codes (GB/T 2260) used as the first six characters."""

MOBILE_PREFIXES: tuple[int, ...] = (
    130, 131, 132, 133, 134, 135, 136, 137, 138, 139, 147, 150, 151, 152, 153, 155, 156,
    157, 158, 159, 166, 170, 176, 177, 178, 180, 181, 182, 183, 184, 185, 186, 187, 188,
    189, 191, 198, 199,
)  # fmt: skip
"""Mainland-China mobile number prefixes (China Mobile, China Unicom, China Telecom)."""

_SURNAMES = (
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏"
    "魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵"
)
_GIVEN = (
    "伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超霞平刚桂华建国文辉玲红鹏宇浩欣婷雪琳晨凯飞斌宁波云峰"
    "海龙俊佳慧颖子梓涵轩怡博睿嘉思雨晓丹萍亮鑫志新春玉兰凤林东成荣健燕梅"
)

_BIRTH_START = np.datetime64("1950-01-01", "D")
_BIRTH_END = np.datetime64("2005-12-31", "D")


def unique_integers(rng: np.random.Generator, high: int, n: int) -> npt.NDArray[np.int64]:
    """Draw ``n`` distinct integers uniformly from ``[1, high]``, in random order.

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of randomness.
    high : int
        Largest value; must be at least ``n``.
    n : int
        Number of values.

    Returns
    -------
    numpy.ndarray of int64
        ``n`` distinct values. Deterministic for a given generator state.
    """
    if n > high:
        raise ValueError(f"cannot draw {n} distinct values from [1, {high}]")
    if n * 4 > high:  # dense: a permutation is cheaper than rejection
        return rng.permutation(high)[:n].astype(np.int64) + 1
    out = np.empty(0, dtype=np.int64)
    while out.size < n:
        need = n - out.size
        draw = rng.integers(1, high + 1, size=need + need // 8 + 16, dtype=np.int64)
        merged = np.concatenate([out, draw])
        _, first = np.unique(merged, return_index=True)
        out = merged[np.sort(first)]
    return out[:n]


def _ascii_digits(values: npt.NDArray[np.int64], width: int) -> npt.NDArray[np.uint8]:
    """Return the zero-padded decimal digits of ``values`` as an ``(n, width)`` ASCII array."""
    powers = 10 ** np.arange(width - 1, -1, -1, dtype=np.int64)
    return ((values[:, None] // powers) % 10 + 48).astype(np.uint8)


def _to_str(chars: npt.NDArray[np.uint8]) -> npt.NDArray[np.str_]:
    """View an ``(n, w)`` ASCII array as ``n`` strings of width ``w``."""
    width = chars.shape[1]
    flat = np.ascontiguousarray(chars).view(f"S{width}").ravel()
    return flat.astype(f"U{width}")


def format_codes(numbers: npt.ArrayLike, prefix: str, width: int) -> npt.NDArray[np.str_]:
    """Format non-negative integers as ``prefix`` + ``width`` zero-padded digits.

    Parameters
    ----------
    numbers : array_like of int
        Values in ``[0, 10**width)``.
    prefix : str
        ASCII prefix, for example ``"TA"`` for transaction ids of bank A.
    width : int
        Number of digits.

    Returns
    -------
    numpy.ndarray of str
        ``format_codes([7], "Q", 4)`` gives ``['Q0007']``.
    """
    values = np.asarray(numbers, dtype=np.int64).ravel()
    head = np.frombuffer(prefix.encode("ascii"), dtype=np.uint8)
    chars = np.empty((values.size, head.size + width), dtype=np.uint8)
    chars[:, : head.size] = head
    chars[:, head.size :] = _ascii_digits(values, width)
    return _to_str(chars)


def format_customer_ids(numbers: npt.ArrayLike) -> npt.NDArray[np.str_]:
    """Format id numbers as customer ids ``C`` + 8 digits.

    Parameters
    ----------
    numbers : array_like of int
        Values in ``[1, ID_SPACE]``.

    Returns
    -------
    numpy.ndarray of str
        For example ``format_customer_ids([123])`` gives ``['C00000123']``.
    """
    return format_codes(numbers, ID_PREFIX, _ID_DIGITS)


def _check_ascii(first17: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    """Return the ASCII check character for each row of 17 ASCII digits."""
    total = (first17.astype(np.int64) - 48) @ _NID_WEIGHTS
    return np.asarray(_NID_CHECK_ASCII[total % 11], dtype=np.uint8)


def national_id_check_char(first17: str) -> str:
    """Return the ISO 7064 MOD 11-2 check character of the first 17 digits of an identity number.

    Parameters
    ----------
    first17 : str
        Seventeen decimal digits.

    Returns
    -------
    str
        One of ``0123456789X``. ``national_id_check_char("11010519491231002")`` is ``"X"``.

    Raises
    ------
    ValueError
        If ``first17`` is not 17 decimal digits.
    """
    if len(first17) != 17 or not first17.isdigit() or not first17.isascii():
        raise ValueError("expected 17 decimal digits")
    total = sum(int(c) * int(w) for c, w in zip(first17, _NID_WEIGHTS, strict=True))
    return _NID_CHECK[total % 11]


def is_valid_national_id(value: str) -> bool:
    """Tell whether ``value`` is an 18-character identity number with a correct check character.

    Only the layout and the check character are verified (plus a plausible birth date), not
    whether the number was ever issued.

    Parameters
    ----------
    value : str
        Candidate identity number.

    Returns
    -------
    bool
        ``True`` for a well-formed number.
    """
    if len(value) != 18 or not value[:17].isdigit() or not value.isascii():
        return False
    try:
        np.datetime64(f"{value[6:10]}-{value[10:12]}-{value[12:14]}", "D")
    except ValueError:
        return False
    return national_id_check_char(value[:17]) == value[17].upper()


def national_ids_valid(values: npt.ArrayLike) -> npt.NDArray[np.bool_]:
    """Vectorised check-character test for many identity numbers (layout and checksum only).

    Parameters
    ----------
    values : array_like of str
        Candidate identity numbers.

    Returns
    -------
    numpy.ndarray of bool
        ``True`` where the value has 18 ASCII characters, 17 leading digits and a matching
        check character.
    """
    arr = np.asarray(values, dtype="U18")
    ok_len = np.char.str_len(arr) == 18
    raw = np.char.encode(arr, "ascii", errors="replace").astype("S18")
    chars = raw.view(np.uint8).reshape(arr.size, 18)
    digits_ok = np.all((chars[:, :17] >= 48) & (chars[:, :17] <= 57), axis=1)
    check = _check_ascii(np.where(digits_ok[:, None], chars[:, :17], 48).astype(np.uint8))
    last = np.where(chars[:, 17] == ord("x"), ord("X"), chars[:, 17])
    return np.asarray(ok_len & digits_ok & (check == last), dtype=np.bool_)


def national_ids(
    rng: np.random.Generator, n: int, *, exclude: npt.NDArray[np.int64] | None = None
) -> tuple[npt.NDArray[np.str_], npt.NDArray[np.int64]]:
    """Draw ``n`` distinct, well-formed resident identity numbers.

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of randomness.
    n : int
        Number of identity numbers.
    exclude : numpy.ndarray of int64, optional
        Keys (second return value of an earlier call) that must not be drawn again, so two calls
        give disjoint people.

    Returns
    -------
    ids : numpy.ndarray of str
        18-character identity numbers with a valid check character; birth dates between 1950
        and 2005, sequence parity encoding the sex.
    keys : numpy.ndarray of int64
        The integer key ``(region, birth day, sequence)`` of each number.
    """
    n_days = int((_BIRTH_END - _BIRTH_START).astype(np.int64)) + 1
    space = len(REGION_CODES) * n_days * 1000
    keys = unique_integers(rng, space, n) - 1
    if exclude is not None and exclude.size:
        keys = keys[~np.isin(keys, exclude)]
        while keys.size < n:
            more = unique_integers(rng, space, 2 * (n - keys.size) + 16) - 1
            more = more[~np.isin(more, exclude) & ~np.isin(more, keys)]
            keys = np.concatenate([keys, more])[:n]
    region_idx, rest = np.divmod(keys, n_days * 1000)
    day, seq = np.divmod(rest, 1000)
    birth = _BIRTH_START + day.astype("timedelta64[D]")
    month_start = birth.astype("datetime64[M]")
    year = birth.astype("datetime64[Y]").astype(np.int64) + 1970
    month = month_start.astype(np.int64) % 12 + 1
    dom = (birth - month_start.astype("datetime64[D]")).astype(np.int64) + 1
    birth_digits = year * 10000 + month * 100 + dom
    region = np.asarray(REGION_CODES, dtype=np.int64)[region_idx]
    chars = np.empty((n, 18), dtype=np.uint8)
    chars[:, 0:6] = _ascii_digits(region, 6)
    chars[:, 6:14] = _ascii_digits(birth_digits, 8)
    chars[:, 14:17] = _ascii_digits(seq, 3)
    chars[:, 17] = _check_ascii(chars[:, :17])
    return _to_str(chars), keys


def phone_numbers(
    rng: np.random.Generator, n: int, *, exclude: npt.NDArray[np.int64] | None = None
) -> npt.NDArray[np.int64]:
    """Draw ``n`` distinct 11-digit mobile numbers with real prefixes.

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of randomness.
    n : int
        Number of phone numbers.
    exclude : numpy.ndarray of int64, optional
        Numbers that must not be drawn.

    Returns
    -------
    numpy.ndarray of int64
        Phone numbers as integers (``13812345678``); format with ``astype(str)``.
    """
    space = len(MOBILE_PREFIXES) * 10**8
    extra = 0 if exclude is None else exclude.size + 16
    keys = unique_integers(rng, space, n + extra) - 1
    prefix_idx, rest = np.divmod(keys, 10**8)
    phones = np.asarray(MOBILE_PREFIXES, dtype=np.int64)[prefix_idx] * 10**8 + rest
    if exclude is not None and exclude.size:
        phones = phones[~np.isin(phones, exclude)]
    return phones[:n]


def person_names(rng: np.random.Generator, n: int) -> npt.NDArray[np.str_]:
    """Draw ``n`` Chinese personal names (one-character surname, one or two given characters).

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of randomness.
    n : int
        Number of names (not necessarily distinct, as in real life).

    Returns
    -------
    numpy.ndarray of str
    """
    # Zipf-like surname frequencies: the first surnames of the list are the most common.
    weights = 1.0 / np.arange(1, len(_SURNAMES) + 1) ** 0.8
    surname = rng.choice(len(_SURNAMES), size=n, p=weights / weights.sum())
    given1 = rng.integers(0, len(_GIVEN), size=n)
    given2 = rng.integers(0, len(_GIVEN), size=n)
    two = rng.random(n) < 0.7
    chars = np.empty((n, 3), dtype="U1")
    chars[:, 0] = np.asarray(list(_SURNAMES))[surname]
    chars[:, 1] = np.asarray(list(_GIVEN))[given1]
    chars[:, 2] = np.where(two, np.asarray(list(_GIVEN))[given2], "")
    return np.ascontiguousarray(chars).view("U3").ravel()
