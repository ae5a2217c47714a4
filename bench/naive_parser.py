"""The baseline: the simplest function_graph parser a user would write.

Reads the file line by line, one regex per line, keeps a call stack per task (pid, or CPU when
the trace has no proc column), and collects one dict per call into a list that becomes a
pandas DataFrame. No vectorisation, no special cases beyond entry / leaf / exit lines.

    python bench/naive_parser.py trace.txt
"""

from __future__ import annotations

import re
import sys

import pandas as pd

LINE = re.compile(
    r"^\s*(?:(?P<ts>\d+\.\d+) \|\s+)?"                 # funcgraph-abstime
    r"(?:(?P<cpu>\d+)\)\s+)?"                          # funcgraph-cpu
    r"(?:(?P<comm>[^|]*?)-(?P<pid>\d+)\s+\|\s)?"       # funcgraph-proc
    r"\s*(?:[+!#*@$]\s)?\s*(?:(?P<dur>\d+(?:\.\d*)?) us)?\s*\|"
    r"(?P<indent>\s*)(?P<body>\S.*)$")
ENTRY = re.compile(r"^(?P<name>[^\s(]+)(?: \[\S+\])?\(\) \{$")
LEAF = re.compile(r"^(?P<name>[^\s(]+)(?: \[\S+\])?\(\);$")


def parse(path: str) -> pd.DataFrame:
    calls: list[dict] = []
    stacks: dict[str, list[dict]] = {}
    with open(path, encoding="utf-8", errors="replace") as f:
        for lineno, line in enumerate(f, 1):
            m = LINE.match(line.rstrip("\n"))
            if m is None:
                continue
            task = m["pid"] or f"cpu{m['cpu']}"
            stack = stacks.setdefault(task, [])
            body = m["body"]
            depth = (len(m["indent"]) - 2) // 2
            ts = float(m["ts"]) if m["ts"] else None
            if body.startswith("}"):
                if stack:
                    call = stack.pop()
                    call["duration_us"] = float(m["dur"]) if m["dur"] else None
                    call["end_s"] = ts
                continue
            e = ENTRY.match(body)
            if e is not None:
                call = {"func": e["name"], "pid": task, "cpu": m["cpu"], "depth": depth,
                        "parent": stack[-1]["id"] if stack else -1, "start_s": ts,
                        "end_s": None, "duration_us": None, "line": lineno, "id": len(calls)}
                calls.append(call)
                stack.append(call)
                continue
            e = LEAF.match(body)
            if e is not None:
                dur = float(m["dur"]) if m["dur"] else None
                calls.append({"func": e["name"], "pid": task, "cpu": m["cpu"], "depth": depth,
                              "parent": stack[-1]["id"] if stack else -1, "start_s": ts,
                              "end_s": ts, "duration_us": dur, "line": lineno,
                              "id": len(calls)})
    return pd.DataFrame(calls)


if __name__ == "__main__":
    df = parse(sys.argv[1])
    print(f"{len(df)} calls")
