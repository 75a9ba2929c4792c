"""node.yaml's ``store``: by default the SQLite file the node has always used under
``state_dir`` (existing state directories keep working); a SQLite path relative to node.yaml;
a URL as given; a malformed one refused when the config is loaded."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from privfin.errors import ConfigError
from privfin.node.config import STORE_FILE, load_config


def write(tmp_path: Path, **extra: object) -> Path:
    cfg = {"party": "bank_a", "port": 8443, "state_dir": "state", "cert": "a.crt", "key": "a.key"}
    path = tmp_path / "node.yaml"
    path.write_text(yaml.safe_dump({**cfg, **extra}))
    return path


def test_default_store_is_the_sqlite_file_in_the_state_dir(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path))
    assert cfg.store is None
    assert STORE_FILE == "node.sqlite"
    assert cfg.store_url() == str(tmp_path / "state" / "node.sqlite")


def test_store_path_is_relative_to_the_config_and_urls_are_kept(tmp_path: Path) -> None:
    assert load_config(write(tmp_path, store="db/n.sqlite")).store_url() == str(
        tmp_path / "db" / "n.sqlite"
    )
    url = "postgresql://privfin@db.internal:5432/bank_a"
    assert load_config(write(tmp_path, store=url)).store_url() == url


@pytest.mark.parametrize("bad", ["postgresql://u:s3cret@h:port/db", " "])
def test_a_malformed_store_is_refused_at_load(tmp_path: Path, bad: str) -> None:
    with pytest.raises(ConfigError, match="store") as info:
        load_config(write(tmp_path, store=bad))
    assert "s3cret" not in str(info.value)  # the URL's password is not echoed
