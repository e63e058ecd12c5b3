"""Benchmark the offline plan: whole-process time of `python -m offline.plan` and one in-process run.

    .venv/bin/python bench/bench_plan.py [--runs 7]

Prints figures next to the target (the whole command well under 2 s once the virtualenv exists).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
TARGET_SECONDS = 2.0


def whole_process_seconds(stack: str, json_output: bool) -> float:
    command = [sys.executable, "-m", "offline.plan", "--stack", stack] + (["--json"] if json_output else [])
    started = time.perf_counter()
    subprocess.run(command, cwd=PROJECT_ROOT, check=True, capture_output=True)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=7, help="runs per figure (default 7)")
    args = parser.parse_args()
    sys.path.insert(0, str(PROJECT_ROOT))
    from offline.engine import run_program

    print(f"offline plan, {args.runs} runs each, median ")
    for stack in ("dev", "prod"):
        for json_output in (False, True):
            times = [whole_process_seconds(stack, json_output) for _ in range(args.runs)]
            median = statistics.median(times)
            verdict = "PASS" if median < TARGET_SECONDS else "MISS"
            label = f"make plan STACK={stack}{' JSON=1' if json_output else ''}"
            print(
                f"  {label:<28} {median * 1000:7.0f} ms  (max {max(times) * 1000:.0f} ms)  target < 2000 ms  {verdict}"
            )
    run_program("dev")  # warm imports, then time the program alone
    times = []
    for _ in range(args.runs):
        started = time.perf_counter()
        run_program("prod")
        times.append(time.perf_counter() - started)
    print(f"  in-process run_program(prod)  {statistics.median(times) * 1000:7.1f} ms  (imports already loaded)")


if __name__ == "__main__":
    main()
