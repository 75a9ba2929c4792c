"""``python -m privfin.node --config node.yaml``: run one node (used by the local cluster)."""

from __future__ import annotations

import argparse
import logging
import sys

from privfin.errors import PrivfinError
from privfin.node.config import load_config
from privfin.node.logs import configure_logging
from privfin.node.server import run_node


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m privfin.node")
    parser.add_argument("--config", required=True)
    args = parser.parse_args()
    configure_logging(logging.INFO)  # one line per record: peer text cannot forge lines
    try:
        run_node(load_config(args.config))
    except PrivfinError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
