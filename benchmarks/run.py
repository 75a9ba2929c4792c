"""Run every benchmark script (``python benchmarks/run.py [--quick] [name ...]``).

Each benchmark is a script ``benchmarks/<name>.py`` that prints a table and JSON lines; this
runner runs them one after the other and collects the JSON lines into
``benchmarks/results/<date>.jsonl``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes (under a minute each)")
    parser.add_argument("names", nargs="*", help="benchmarks to run (default: all)")
    args = parser.parse_args()
    scripts = sorted(p for p in HERE.glob("*.py") if not p.name.startswith(("_", "run")))
    if args.names:
        scripts = [p for p in scripts if p.stem in args.names]
    results: list[dict[str, object]] = []
    failed: list[str] = []
    for script in scripts:
        print(f"=== {script.stem} ===", flush=True)
        cmd = [sys.executable, str(script), *(["--quick"] if args.quick else [])]
        proc = subprocess.run(cmd, check=False, capture_output=True, text=True)
        sys.stdout.write(proc.stdout)
        sys.stderr.write(proc.stderr)
        if proc.returncode != 0:
            failed.append(script.stem)
        for line in proc.stdout.splitlines():
            if line.startswith("{") and '"bench"' in line:
                results.append(json.loads(line))
    out_dir = HERE / "results"
    out_dir.mkdir(exist_ok=True)
    out = out_dir / f"{dt.date.today().isoformat()}{'-quick' if args.quick else ''}.jsonl"
    out.write_text("".join(json.dumps(r) + "\n" for r in results))
    print(f"{len(results)} figures written to {out}; failed: {failed or 'none'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
