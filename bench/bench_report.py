"""Time to first answer: `ftracekit report` on the 10^6-line real trace, process start to the
printed summary; for scale, the naive parser's process only parsing (bench/naive_parser.py).

    .venv/bin/python bench/bench_report.py            # writes bench/results_report.md

Each run is a fresh process (`python -m ftracekit report FILE`); the best and the median of
3 runs are reported. Decompression of the .xz input happens once, before timing.
"""

from __future__ import annotations

import lzma
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
DATA = HERE / "data"
OUT = HERE / "results_report.md"


def _run(argv: list[str]) -> tuple[float, str]:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    t0 = time.perf_counter()
    r = subprocess.run(argv, capture_output=True, text=True, env=env)
    dt = time.perf_counter() - t0
    if r.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed: {r.stderr.strip()[-400:]}")
    return dt, r.stdout


def main() -> int:
    src = DATA / "fg_1m.txt.xz"
    if not src.exists():
        print(f"missing {src}: run bench/make_data.py", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        text = Path(tmp) / "fg_1m.txt"
        text.write_bytes(lzma.decompress(src.read_bytes()))
        lines = text.read_bytes().count(b"\n")
        rows = []
        for label, argv in [
            ("`ftracekit report` (python -m ftracekit report FILE)",
             [sys.executable, "-m", "ftracekit", "report", str(text)]),
            ("`python -c 'import ftracekit'` (start-up alone)",
             [sys.executable, "-c", "import ftracekit"]),
            ("naive regex parser, parse only (bench/naive_parser.py FILE)",
             [sys.executable, str(HERE / "naive_parser.py"), str(text)]),
        ]:
            times = []
            out = ""
            for _ in range(3):
                dt, out = _run(argv)
                times.append(dt)
            rows.append((label, min(times), statistics.median(times), out))
    load = os.getloadavg()[0]
    md = [
        "## Time to first answer",
        "",
        f"`{' '.join(['ftracekit', 'report'])}` on fg_1m ({lines:,} lines), whole process, best of 3 "
        f"[median]; {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"load average {load:.2f} at the end.",
        "",
        "| command | wall [median] |",
        "|---|---:|",
    ]
    for label, best, med, _ in rows:
        md.append(f"| {label} | {best:.2f} s [{med:.2f}] |")
    first = rows[0][3].splitlines()
    md += ["", "First lines of the answer:", "", "```", *first[:8], "```", ""]
    OUT.write_text("\n".join(md))
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
