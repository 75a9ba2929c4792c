"""``python -m privfin.node --config node.yaml``: run one node (used by the local cluster)."""

from __future__ import annotations

import argparse
import logging
import sys

from privfin.errors import PrivfinError, disk_full
from privfin.node.config import load_config
from privfin.node.logs import configure_logging
from privfin.node.server import run_node


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m privfin.node")
    parser.add_argument("--config", required=True)
    args = parser.parse_args()
    configure_logging(logging.INFO)  # one line per record: peer text cannot forge lines
    try:
        config = load_config(args.config)
        try:
            run_node(config)
        except Exception as exc:  # e.g. the state directory's disk is full at start
            full = disk_full(exc, str(config.state_dir))
            if full is None:
                raise
            raise full from exc
    except PrivfinError as exc:
        logging.getLogger("privfin.node").error("%s", exc)
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
