"""The node's conversion of a job result to JSON (``runner.jsonable``)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from privfin.node.runner import jsonable


def test_plain_lists_are_copied_and_nested_values_converted() -> None:
    ids = [f"id-{i}" for i in range(1000)]
    out = jsonable({"ids": ids, "rows": list(range(1000)), "mixed": ["a", 1, 2.5, True, None]})
    assert out["ids"] == ids and out["ids"] is not ids  # the plain-list path copies
    assert out["rows"] == list(range(1000)) and out["mixed"] == ["a", 1, 2.5, True, None]
    # a list holding anything else takes the per-item path: numpy values, arrays, tables
    nested = jsonable(
        {"v": [np.int64(3), np.array([1, 2]), (1, "x"), pd.DataFrame({"a": [1]}), b"\x01"]}
    )
    assert nested == {"v": [3, [1, 2], [1, "x"], {"columns": ["a"], "rows": 1}, "01"]}
    json.dumps(nested)
    with pytest.raises(TypeError, match="cannot be stored as JSON"):
        jsonable([1, object()])
