#!/usr/bin/env python3
"""Draw the round-robin benchmark results as an SVG chart (Python standard library only).

    python3 scripts/bench_chart.py [results.json] [chart.svg]
    python3 scripts/bench_chart.py --table [results.json] [instructions.json]

The second form prints the Markdown table of BENCHMARKS.md instead (with the instruction counts
of scripts/bench_instructions.py beside the timings when given).

Defaults: benches/results/roundrobin.json -> benches/results/roundrobin.svg. The JSON is what
`cargo bench --bench roundrobin` writes (target/bench-results/roundrobin.json); copy it into
benches/results/ to publish it with BENCHMARKS.md.

Left panel: ns per span (median over rounds, whiskers p25-p75) per variant, coloured by kind,
with the median ratio to Registry + no-op layer. Right panel: two-thread scaling (throughput of
two threads over one) for the variants run on two threads, with the threads' span stacks
adjacent and apart, and the 1.8x target drawn.
"""

import json
import sys
from html import escape
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
COLOURS = {
    "floor": "#9e9e9e",
    "baseline": "#607d8b",
    "hand-written": "#4caf50",
    "layer": "#1e88e5",
    "peer": "#fb8c00",
}


def nice_max(x):
    """A round axis maximum at or above x."""
    step = 1.0
    while step * 10 < x:
        step *= 10
    for m in (1, 2, 2.5, 5, 10):
        if step * m >= x:
            return step * m
    return step * 10


def chart(data):
    rows = data["variants"]
    label_w, bar_w, gap = 190, 430, 40
    scale_w = 240
    row_h, top = 22, 84
    height = top + row_h * len(rows) + 70
    width = label_w + bar_w + gap + label_w + scale_w + 90
    xmax = nice_max(max(r["ns_p75"] or r["ns_per_span"] for r in rows) * 1.05)
    out = []
    add = out.append
    add(
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">'
    )
    add(f'<rect width="{width}" height="{height}" fill="white"/>')
    m = data["machine"]
    title = "tracing-spanmetrics: ns per span, round-robin medians"
    sub = (
        f'{m.get("cpu", "?")}, {m.get("cores", "?")} cores, {m.get("rustc", "?")}, '
        f'rev {m.get("revision", "?")}; {data["rounds"]} rounds x {data["slice"]} spans; '
        f'load average {m.get("loadavg_at_end", "?")}'
    )
    if data.get("thread_rounds"):
        sub += f'; two threads: {data["thread_rounds"]} rounds x {data["thread_slice"]} spans'
    add(f'<text x="10" y="20" font-size="15" font-weight="bold">{escape(title)}</text>')
    add(f'<text x="10" y="38" fill="#555">{escape(sub)}</text>')

    # Left panel: ns per span.
    x0 = label_w
    add(f'<text x="{x0}" y="{top - 12}" fill="#333">ns per span (whiskers: p25-p75); '
        f'x = ratio to {escape(data["baseline"])}</text>')
    for k in range(0, 6):
        v = xmax * k / 5
        x = x0 + bar_w * k / 5
        add(f'<line x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{top + row_h * len(rows)}" '
            f'stroke="#e0e0e0"/>')
        add(f'<text x="{x:.1f}" y="{top + row_h * len(rows) + 15}" text-anchor="middle" '
            f'fill="#555">{v:g}</text>')
    for i, r in enumerate(rows):
        y = top + i * row_h
        colour = COLOURS.get(r["kind"], "#000")
        w = bar_w * r["ns_per_span"] / xmax
        add(f'<text x="{x0 - 6}" y="{y + 15}" text-anchor="end">{escape(r["name"])}</text>')
        add(f'<rect x="{x0}" y="{y + 4}" width="{w:.1f}" height="{row_h - 8}" fill="{colour}"/>')
        if r["ns_p25"] is not None and r["ns_p75"] is not None:
            a = x0 + bar_w * r["ns_p25"] / xmax
            b = x0 + bar_w * r["ns_p75"] / xmax
            add(f'<line x1="{a:.1f}" y1="{y + row_h / 2}" x2="{b:.1f}" y2="{y + row_h / 2}" '
                f'stroke="#222"/>')
        end = max(w, bar_w * (r["ns_p75"] or 0) / xmax)
        add(f'<text x="{x0 + end + 6:.1f}" y="{y + 15}" fill="#222">'
            f'{r["ns_per_span"]:.0f} ns ({r["ratio"]:.2f}x)</text>')

    # Right panel: two-thread scaling.
    threaded = [r for r in rows if r.get("scaling") is not None]
    x1 = label_w + bar_w + gap + label_w
    smax = 2.2
    add(f'<text x="{x1}" y="{top - 26}" fill="#333">2 threads / 1 thread throughput</text>')
    add(f'<text x="{x1}" y="{top - 12}" fill="#555">solid: span stacks adjacent; pale: apart</text>')
    for k in range(0, 12, 2):
        v = k / 10 * 2
        if v > smax:
            break
        x = x1 + scale_w * v / smax
        add(f'<line x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{top + row_h * len(threaded)}" '
            f'stroke="#e0e0e0"/>')
        add(f'<text x="{x:.1f}" y="{top + row_h * len(threaded) + 15}" text-anchor="middle" '
            f'fill="#555">{v:g}</text>')
    tx = x1 + scale_w * 1.8 / smax
    add(f'<line x1="{tx:.1f}" y1="{top - 4}" x2="{tx:.1f}" y2="{top + row_h * len(threaded)}" '
        f'stroke="#d32f2f" stroke-dasharray="4 3"/>')
    add(f'<text x="{tx:.1f}" y="{top + row_h * len(threaded) + 30}" text-anchor="middle" '
        f'fill="#d32f2f">target 1.8</text>')
    # Two bars per variant: the threads' span stacks adjacent (solid, as in an application)
    # and apart (pale); see BENCHMARKS.md.
    half = (row_h - 6) / 2
    for i, r in enumerate(threaded):
        y = top + i * row_h
        colour = COLOURS.get(r["kind"], "#000")
        add(f'<text x="{x1 - 6}" y="{y + 15}" text-anchor="end">{escape(r["name"])}</text>')
        ends, texts = [], []
        for k, (prefix, opacity) in enumerate((("", 1.0), ("apart_", 0.4))):
            value = r.get(prefix + "scaling")
            if value is None:
                continue
            by = y + 3 + k * half
            w = scale_w * min(value, smax) / smax
            add(f'<rect x="{x1}" y="{by:.1f}" width="{w:.1f}" height="{half - 1:.1f}" '
                f'fill="{colour}" fill-opacity="{opacity}"/>')
            if r.get(prefix + "scaling_p25") is not None:
                a = x1 + scale_w * min(r[prefix + "scaling_p25"], smax) / smax
                b = x1 + scale_w * min(r[prefix + "scaling_p75"], smax) / smax
                add(f'<line x1="{a:.1f}" y1="{by + half / 2:.1f}" x2="{b:.1f}" '
                    f'y2="{by + half / 2:.1f}" stroke="#222"/>')
            ends.append(max(w, scale_w * min(r.get(prefix + "scaling_p75") or 0, smax) / smax))
            texts.append(f"{value:.2f}")
        add(f'<text x="{x1 + max(ends) + 4:.1f}" y="{y + 15}">{" / ".join(texts)}</text>')

    # Legend.
    ly = height - 18
    lx = 10
    for kind, colour in COLOURS.items():
        add(f'<rect x="{lx}" y="{ly - 10}" width="12" height="12" fill="{colour}"/>')
        add(f'<text x="{lx + 16}" y="{ly}">{escape(kind)}</text>')
        lx += 30 + 8 * len(kind)
    add("</svg>")
    return "\n".join(out) + "\n"


def fmt_opt(x, spec):
    return "" if x is None else format(x, spec)


def table(data, instructions=None):
    instr = {}
    if instructions:
        instr = {r["name"]: r for r in instructions["variants"]}
    lines = [
        "| variant | kind | ns/span | ratio to registry+noop (p25-p75) | added ns over own baseline "
        "| added / hand/handles added | instr/span | added instr / handles' | 2 threads: ns/span "
        "per thread | 2-thread scaling (p25-p75) | scaling, span stacks apart (p25-p75) |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in data["variants"]:
        i = instr.get(r["name"], {})
        base = r["kind"] in ("baseline", "floor")
        def scaling(prefix):
            if r.get(prefix + "scaling") is None:
                return ""
            return "{:.2f} ({:.2f}-{:.2f})".format(
                r[prefix + "scaling"], r[prefix + "scaling_p25"], r[prefix + "scaling_p75"]
            )

        lines.append(
            "| {} | {} | {:.0f} | {:.2f} ({:.2f}-{:.2f}) | {} | {} | {} | {} | {} | {} | {} |".format(
                r["name"],
                r["kind"],
                r["ns_per_span"],
                r["ratio"],
                r["ratio_p25"],
                r["ratio_p75"],
                "" if base else f'{r["added_ns"]:.0f}' + (
                    "" if r["baseline"] == data["baseline"] else f' (vs {r["baseline"]})'
                ),
                "" if base else f'{r["added_vs_handles"]:.2f}',
                fmt_opt(i.get("instructions_per_span"), ".0f"),
                "" if base or "added_vs_handles" not in i else f'{i["added_vs_handles"]:.2f}',
                fmt_opt(r.get("two_thread_ns_per_span"), ".0f"),
                scaling(""),
                scaling("apart_"),
            )
        )
    return "\n".join(lines)


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--table":
        src = Path(sys.argv[2]) if len(sys.argv) > 2 else ROOT / "benches/results/roundrobin.json"
        ins = Path(sys.argv[3]) if len(sys.argv) > 3 else ROOT / "benches/results/instructions.json"
        instructions = json.loads(ins.read_text()) if ins.exists() else None
        print(table(json.loads(src.read_text()), instructions))
        return
    src = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "benches/results/roundrobin.json"
    dst = Path(sys.argv[2]) if len(sys.argv) > 2 else src.with_suffix(".svg")
    data = json.loads(src.read_text())
    dst.write_text(chart(data))
    print(f"wrote {dst}")


if __name__ == "__main__":
    main()
