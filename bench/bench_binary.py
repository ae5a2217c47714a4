"""Binary benchmark: decoding ``trace.dat`` and raw captures against the text path and trace-cmd.

    .venv/bin/python bench/bench_binary.py                 # writes bench/results_binary.md
    .venv/bin/python bench/bench_binary.py --repeat 5 [--dat fg_10m.dat --text fg_10m.txt]
        [--raw DIR] [--before REV]

Inputs (same workload, recorded by ``bench/make_data.py``):

* ``fg_1m.dat`` — trace-cmd's recording (file version 7, zstd-compressed pages);
* a raw capture directory (``ftracekit record --raw`` layout; ``make_data.py --raw`` records
  one under /var/tmp). Unless ``--raw DIR`` names a real capture it is *synthesised from the
  .dat*: the same ring-buffer pages (a ``trace.dat`` stores the pages of ``trace_pipe_raw`` unchanged),
  written uncompressed as ``cpuN.raw`` with the file's event formats, kallsyms and saved
  cmdlines (:func:`make_raw`). The report says which;
* ``fg_1m.txt.xz`` — the text trace of the same workload (decompressed before timing).

Every measurement runs in a fresh process (imports and a tiny warm-up load are not timed): the
decode alone (``load_tracedat`` on the file's bytes / ``load_capture``), the whole
``ftracekit.load`` (decode + calls/events tables) of the .dat, of the raw capture and of the
text, with CPU time and the peak RSS increase (``VmHWM`` after resetting it). The modes are
interleaved round by round, so a busy machine slows them alike; each figure is the best of
``--repeat`` rounds (median in brackets). ``trace-cmd report -i fg_1m.dat > /dev/null`` is
timed in the same rounds.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import gzip
import json
import lzma
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
DATA = HERE / "data"
TINY_DAT = REPO / "tests" / "data" / "tracecmd-6.17" / "rtnl_v7_zstd.dat"
TINY_RAW = REPO / "tests" / "data" / "raw-6.17" / "rtnl_capture"
TINY_TXT = REPO / "tests" / "data" / "shared" / "rtnl_trace_pipe.txt"
MODES = ["decode_dat", "decode_raw", "load_dat", "load_raw", "load_text"]

sys.path.insert(0, str(HERE))
from bench_parse import _status, machine  # noqa: E402  (the same child-process helpers)


# ---------------------------------------------------------------------------------------------
# Child processes

def child(mode: str, path: str, root: str) -> dict:
    sys.path.insert(0, root)
    import gc

    import numpy  # noqa: F401
    import pandas  # noqa: F401

    import ftracekit
    from ftracekit.read import rawtrace, tracedat
    for tiny in (TINY_DAT, TINY_RAW, TINY_TXT):       # lazy imports, first-call costs
        ftracekit.load(tiny)
    data = Path(path).read_bytes() if mode == "decode_dat" else None
    gc.collect()
    base = _status()["VmRSS"]
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass
    t0, c0, m0 = time.perf_counter(), time.process_time(), time.thread_time()
    if mode == "decode_dat":
        recs, meta = tracedat.load_tracedat(data, path)
        # (events, not records: entry/exit pairs become one leaf record since issue 13)
        res = {"events": meta.get("events_decoded", len(recs))}
    elif mode == "decode_raw":
        recs, meta = rawtrace.load_capture(path)
        res = {"events": meta.get("events_decoded", len(recs))}
    else:
        t = ftracekit.load(path)
        res = {"events": t.meta["lines"], "calls": len(t.calls)}
    t1, c1, m1 = time.perf_counter(), time.process_time(), time.thread_time()
    st = _status()
    res.update(wall=t1 - t0, cpu=c1 - c0, main_cpu=m1 - m0, peak_rss=st["VmHWM"] - base)
    return res


def run_child(mode: str, path: Path, root: Path = REPO) -> dict:
    """One measurement in a fresh process; ``root``: the directory holding the ``ftracekit``
    package to measure (another revision's, for ``--before``)."""
    out = subprocess.run([sys.executable, __file__, "--child", mode, str(path), str(root)],
                         capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": str(root)})
    return json.loads(out.stdout.strip().splitlines()[-1])


def trace_cmd_once(dat: Path) -> float:
    t0 = time.perf_counter()
    with open(os.devnull, "wb") as null:
        subprocess.run(["trace-cmd", "report", "-i", str(dat)], stdout=null,
                       stderr=subprocess.DEVNULL, check=True)
    return time.perf_counter() - t0


# ---------------------------------------------------------------------------------------------
# Inputs

def make_raw(dat: Path, out: Path) -> Path:
    """A raw capture directory with the ring-buffer pages of ``dat`` (see module docstring)."""
    sys.path.insert(0, str(REPO))
    from ftracekit.read.tracedat import read_tracedat
    d = read_tracedat(dat.read_bytes(), str(dat))
    if out.exists():
        shutil.rmtree(out)
    (out / "formats").mkdir(parents=True)
    for cpu, pages in d.cpus:
        with open(out / f"cpu{cpu}.raw", "wb") as f:
            for buf in ([pages] if isinstance(pages, (bytes, memoryview)) else pages):
                f.write(buf)
    for ev_id in d.formats:
        text, system = d.formats.text(ev_id)
        if system in ("ftrace", "header"):
            fdir = out / "formats" / system / d.formats[ev_id].name
            fdir.mkdir(parents=True, exist_ok=True)
            (fdir / "format").write_text(text)
    (out / "kallsyms.gz").write_bytes(gzip.compress(d.kallsyms, 1))
    (out / "saved_cmdlines").write_text(d.cmdlines)
    info = {"kernel": d.info.get("uname"), "page_size": d.page_size,
            "cpus": [c for c, _ in d.cpus], "options": {},
            "synthesised_from": dat.name,
            "note": "pages of a trace-cmd trace.dat written as a raw capture by "
                    "bench/bench_binary.py (not recorded with ftracekit record --raw)"}
    (out / "capture.json").write_text(json.dumps(info, indent=1))
    return out


def _count_report_lines(dat: Path) -> int:
    p = subprocess.run(["trace-cmd", "report", "-i", str(dat)], capture_output=True, check=True)
    return p.stdout.count(b"\n")


# ---------------------------------------------------------------------------------------------

def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--dat", default=str(DATA / "fg_1m.dat"))
    ap.add_argument("--text", default=str(DATA / "fg_1m.txt.xz"))
    ap.add_argument("--raw", help="a real raw capture directory (default: synthesise one)")
    ap.add_argument("--work", default="/var/tmp/ftk-bench-binary",
                    help="where the decompressed text and the synthesised capture go")
    ap.add_argument("--out", default=str(HERE / "results_binary.md"))
    ap.add_argument("--before", metavar="REV",
                    help="also measure the .dat decode and the .dat and raw loads of this git "
                         "revision's ftracekit in the same rounds (e.g. the commit before a change)")
    ap.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(*args.child)))
        return
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    dat = Path(args.dat)
    text = Path(args.text)
    if text.suffix == ".xz":
        plain = work / text.with_suffix("").name
        if not plain.exists():
            with lzma.open(text) as src, open(plain, "wb") as f:
                shutil.copyfileobj(src, f, 1 << 20)
        text = plain
    synthesised = args.raw is None
    raw = Path(args.raw) if args.raw else make_raw(dat, work / (dat.stem + ".raw"))
    paths = {"decode_dat": dat, "decode_raw": raw, "load_dat": dat, "load_raw": raw,
             "load_text": text}
    before = None
    if args.before:
        before = work / f"before-{args.before}"
        if not before.exists():
            before.mkdir(parents=True)
            arch = subprocess.run(["git", "-C", str(REPO), "archive", args.before, "ftracekit"],
                                  capture_output=True, check=True).stdout
            subprocess.run(["tar", "-x", "-C", str(before)], input=arch, check=True)
    has_tc = shutil.which("trace-cmd") is not None
    report_lines = _count_report_lines(dat) if has_tc else 0
    started = _dt.datetime.now(_dt.timezone.utc)
    load_before = os.getloadavg()
    runs: dict[str, list[dict]] = {m: [] for m in MODES}
    old: dict[str, list[dict]] = ({m: [] for m in ("decode_dat", "load_dat", "load_raw")}
                                  if before else {})
    tc: list[float] = []
    for rnd in range(args.repeat):
        for m in MODES:
            runs[m].append(run_child(m, paths[m]))
            if m in old:
                old[m].append(run_child(m, paths[m], before))
        if has_tc:
            tc.append(trace_cmd_once(dat))
        print(f"round {rnd + 1}: " + ", ".join(f"{m} {runs[m][-1]['wall']:.3f}s" for m in MODES)
              + (f", trace-cmd {tc[-1]:.3f}s" if tc else ""), flush=True)
    load_after = os.getloadavg()
    write_report(Path(args.out), runs, tc, report_lines, paths, synthesised, started,
                 load_before, load_after, args.repeat, old, args.before)
    print(f"wrote {args.out}")


def _main_cpu(rounds: list[dict]) -> float:
    """The least CPU time of the measuring (main) thread over the rounds: less disturbed by a
    busy machine than the wall time (0 for results without it)."""
    return min(r.get("main_cpu", 0.0) for r in rounds)


def write_report(out: Path, runs: dict[str, list[dict]], tc: list[float], report_lines: int,
                 paths: dict[str, Path], synthesised: bool, started: _dt.datetime,
                 load_before, load_after, repeat: int, old: dict[str, list[dict]],
                 before: str | None) -> None:
    m = machine()
    best = {k: min(v, key=lambda r: r["wall"]) for k, v in runs.items()}
    med = {k: statistics.median(r["wall"] for r in v) for k, v in runs.items()}
    ev = best["decode_dat"]["events"]
    ev_raw = best["decode_raw"]["events"]
    lines_txt = best["load_text"]["events"]
    ns = {k: best[k]["wall"] / best[k]["events"] * 1e9 for k in best}
    out_lines = [
        "# Binary benchmark (trace.dat and raw captures)",
        "",
        f"Generated by `bench/bench_binary.py` on {started:%Y-%m-%d %H:%M} UTC "
        "(overwritten on each run).",
        "",
        f"- Machine: {m['cpu']}, {m['memory']}; kernel {m['kernel']}; Python {m['python']}, "
        f"numpy {m['numpy']}, pandas {m['pandas']}",
        f"- Load average before / after: {load_before[0]:.2f} / {load_after[0]:.2f}",
        f"- Inputs: `{paths['load_dat'].name}` ({paths['load_dat'].stat().st_size / 1e6:.1f} MB, "
        f"{ev:,} ring-buffer events = {report_lines:,} lines of `trace-cmd report`: it prints "
        "an entry and its exit as one leaf line), raw capture "
        + ("**synthesised from the same .dat's pages** (`make_raw` in this script; not recorded "
           "with `record --raw`)" if synthesised else f"`{paths['load_raw']}`")
        + f" ({ev_raw:,} events), text `{paths['load_text'].name}` ({lines_txt:,} lines)",
        f"- Best of {repeat} rounds, each measurement in a fresh process, modes interleaved; "
        "median in brackets; CPU of the best round, in brackets the least CPU time of the "
        "main thread over the rounds. Peak = RSS high-water mark over the post-import baseline.",
        "",
        "| measurement | input | wall [median] | rate | ns per event/line | CPU (main thread) "
        "| peak RSS Δ |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    names = {"decode_dat": "decode (`load_tracedat`)", "decode_raw": "decode (`load_capture`)",
             "load_dat": "`ftracekit.load`", "load_raw": "`ftracekit.load`",
             "load_text": "`ftracekit.load` (text path)"}
    for k in MODES:
        b = best[k]
        unit = "lines" if k == "load_text" else "events"
        out_lines.append(
            f"| {names[k]} | {paths[k].name} | {b['wall']:.3f} s [{med[k]:.3f}] | "
            f"**{b['events'] / b['wall'] / 1e6:.2f} M {unit}/s** | {ns[k]:.0f} | "
            f"{b['cpu']:.3f} s ({_main_cpu(runs[k]):.3f} s) | {b['peak_rss'] / 1e6:.1f} MB |")
    if tc:
        out_lines.append(f"| `trace-cmd report -i {paths['load_dat'].name} > /dev/null` | "
                         f"{paths['load_dat'].name} | {min(tc):.3f} s [{statistics.median(tc):.3f}] | "
                         f"{report_lines / min(tc) / 1e6:.2f} M lines/s | "
                         f"{min(tc) / report_lines * 1e9:.0f} | — | — |")
    for k, v in old.items():
        b = min(v, key=lambda r: r["wall"])
        out_lines.append(
            f"| {names[k]} before (`{before}`) | {paths[k].name} | {b['wall']:.3f} s "
            f"[{statistics.median(r['wall'] for r in v):.3f}] | "
            f"{b['events'] / b['wall'] / 1e6:.2f} M events/s | "
            f"{b['wall'] / b['events'] * 1e9:.0f} | {b['cpu']:.3f} s ({_main_cpu(v):.3f} s) | "
            f"{b['peak_rss'] / 1e6:.1f} MB |")
    if old:
        out_lines += ["", f"Speed-up over `{before}` (same rounds): " + ", ".join(
            f"{names[k]} ×{min(r['wall'] for r in v) / best[k]['wall']:.1f} "
            f"(CPU ×{min(r['cpu'] for r in v) / best[k]['cpu']:.1f}, main thread "
            f"×{_main_cpu(v) / max(_main_cpu(runs[k]), 1e-9):.2f}, peak memory "
            f"{max(r['peak_rss'] for r in v) / 1e6:.0f} → {best[k]['peak_rss'] / 1e6:.0f} MB)"
            for k, v in old.items()) + "."]
    d_rate = ev / best["decode_dat"]["wall"]
    r_rate = ev_raw / best["decode_raw"]["wall"]
    peak_t = best["load_text"]["peak_rss"]
    out_lines += ["", "## Targets (issue 13)", "",
                  f"- decode ≥ 7 M events/s: trace.dat {d_rate / 1e6:.2f} M/s "
                  f"({'met' if d_rate >= 7e6 else 'NOT met'}), raw capture {r_rate / 1e6:.2f} M/s "
                  f"({'met' if r_rate >= 7e6 else 'NOT met'}); counted per trace-cmd report line "
                  f"({report_lines:,}) the .dat decode is {report_lines / best['decode_dat']['wall'] / 1e6:.2f} M/s"]
    for k in ("load_dat", "load_raw"):
        out_lines.append(
            f"- whole load faster per event than text per line ({paths[k].name}): "
            f"{ns[k]:.0f} vs {ns['load_text']:.0f} ns "
            f"({'met' if ns[k] < ns['load_text'] else 'NOT met'}); in absolute time "
            f"{best[k]['wall']:.3f} s vs {best['load_text']['wall']:.3f} s for the same workload")
    if tc:
        ratio = min(tc) / best["load_dat"]["wall"]
        out_lines.append(f"- whole load of the .dat ≥ 10× `trace-cmd report` on it: {ratio:.1f}× "
                         f"({'met' if ratio >= 10 else 'NOT met'})")
    for k in ("load_dat", "load_raw"):
        pk = best[k]["peak_rss"]
        per = (pk / best[k]["events"]) / (peak_t / lines_txt)
        out_lines.append(
            f"- peak memory ≤ 1.5× the text path's ({paths[k].name}): {pk / 1e6:.0f} MB vs "
            f"{peak_t / 1e6:.0f} MB = {pk / peak_t:.2f}× for the same workload "
            f"({'met' if pk <= 1.5 * peak_t else 'NOT met'}); per event vs per line {per:.2f}×")
    out.write_text("\n".join(out_lines) + "\n")


if __name__ == "__main__":
    main()
