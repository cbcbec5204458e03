#!/usr/bin/env python3
"""Instructions per span for each benchmark variant, counted by valgrind's callgrind.

    python3 scripts/bench_instructions.py [ROUNDROBIN_BINARY] [--out FILE.json] [--only NAME]

Instruction counts do not drift with the machine's speed or its other load, so they complement
the round-robin timings (they are not time: a cache miss or a contended atomic costs far more
than its one instruction). Each variant runs alone (`--only NAME`) for 20,000 and for 60,000
spans, counting only inside the timed loop (`--toggle-collect` on `Variant::run`); the difference
divided by 40,000 is the steady-state cost of one span, without first-use work (callsite
registration, plans, label-set registration).

The binary is the round-robin bench target, e.g.
`cargo bench --bench roundrobin --no-run` prints its path. Python standard library only.
"""

import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VARIANTS = [
    "disabled",
    "registry+noop",
    "registry+noop/event",
    "registry+noop/child",
    "hand/naive",
    "hand/handles",
    "hand/handles-foldhash",
    "hand/layer",
    "layer/rule",
    "layer/rule-unrecorded",
    "layer/red",
    "layer/busy-idle",
    "layer/rule+log",
    "layer/milestone",
    "layer/parent-labels",
    "otel/tracer",
    "layer/rule+otel",
    "layer/rule+otel+exemplars",
    "layer/rule+otel+exemplars/outside",
    "ref/otel-context",
    "otel/metrics-event",
    "metrics-tracing-context",
]
BASELINE = {
    "layer/rule+log": "registry+noop/event",
    "layer/milestone": "registry+noop/event",
    "registry+noop/event": "registry+noop/event",
    "layer/parent-labels": "registry+noop/child",
    "registry+noop/child": "registry+noop/child",
    "layer/rule+otel": "otel/tracer",
    "layer/rule+otel+exemplars": "otel/tracer",
    "layer/rule+otel+exemplars/outside": "otel/tracer",
    "ref/otel-context": "otel/tracer",
}
LOW, HIGH = 20_000, 60_000


def find_binary():
    deps = ROOT / "target" / "release" / "deps"
    found = sorted(
        (p for p in deps.glob("roundrobin-*") if p.suffix == "" and p.is_file()),
        key=lambda p: p.stat().st_mtime,
    )
    if not found:
        sys.exit("no roundrobin binary: run `cargo bench --bench roundrobin --no-run`")
    return found[-1]


def collected(binary, variant, spans):
    with tempfile.TemporaryDirectory() as tmp:
        out = subprocess.run(
            [
                "valgrind",
                "--tool=callgrind",
                f"--callgrind-out-file={tmp}/cg.out",
                "--toggle-collect=*Variant::run*",
                str(binary),
                "--bench",
                "--only",
                variant,
                "--spans",
                str(spans),
            ],
            capture_output=True,
            text=True,
            check=True,
        )
    m = re.search(r"Collected : (\d+)", out.stderr)
    if not m:
        sys.exit(f"no count for {variant}: {out.stderr[-500:]}")
    return int(m.group(1))


def main():
    args = sys.argv[1:]
    out = None
    only = None
    binary = None
    while args:
        a = args.pop(0)
        if a == "--out":
            out = Path(args.pop(0))
        elif a == "--only":
            only = args.pop(0)
        else:
            binary = Path(a)
    binary = binary or find_binary()
    names = [only] if only else VARIANTS
    per_span = {}
    for name in names:
        low = collected(binary, name, LOW)
        high = collected(binary, name, HIGH)
        per_span[name] = (high - low) / (HIGH - LOW)
        print(f"{name:<26} {per_span[name]:8.0f} instructions/span", flush=True)
    rows = []
    for name in names:
        base = BASELINE.get(name, "registry+noop")
        row = {"name": name, "instructions_per_span": round(per_span[name], 1)}
        if base in per_span:
            row["baseline"] = base
            row["added"] = round(per_span[name] - per_span[base], 1)
        rows.append(row)
    hand = next((r for r in rows if r["name"] == "hand/handles"), None)
    if hand and hand.get("added"):
        for r in rows:
            if "added" in r:
                r["added_vs_handles"] = round(r["added"] / hand["added"], 3)
    text = json.dumps({"binary": binary.name, "spans": [LOW, HIGH], "variants": rows}, indent=2)
    if out:
        out.write_text(text + "\n")
        print(f"wrote {out}")
    else:
        print(text)


if __name__ == "__main__":
    main()
