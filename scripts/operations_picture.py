#!/usr/bin/env python3
"""Draw the README's operations picture from real data (Python standard library only).

    python3 scripts/operations_picture.py [out.png]

Builds the restate example, runs it with an error burst (every RPC fails from 40 s to 160 s),
has a real Prometheus (Debian's `prometheus`) scrape it every second and evaluate the rules the
example prints (`--print-rules --fast-page 0`: the fast page alert fires as soon as its
condition holds, groups are evaluated every second), then reads `query_range` for the RPCs'
request rate, error ratio and p99, and the `ALERTS` series of the fast page alert. The three
charts, with the alert's firing window shaded, are written as an HTML page of SVG and turned
into a PNG by headless Chromium (Debian's /usr/bin/chromium).

Default output: docs/operations.png. It takes about four and a half minutes.
"""

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from html import escape
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RUN_SECONDS = 260
BURST = (40, 120)
FAMILY = "restate_network_rpc_duration_seconds"
QUERIES = [
    (
        "RPC request rate (calls/s)",
        f"sum(rate({FAMILY}_count[15s]))",
        lambda v: f"{v:.0f}",
    ),
    (
        "RPC error ratio",
        f'sum(rate({FAMILY}_count{{result="error"}}[15s])) / sum(rate({FAMILY}_count[15s]))',
        lambda v: f"{v * 100:.0f}%",
    ),
    (
        "RPC p99 duration (ms)",
        f"1000 * histogram_quantile(0.99, sum by (le) (rate({FAMILY}_bucket[15s])))",
        lambda v: f"{v:.0f}",
    ),
]
ALERT = 'ALERTS{alertname="ErrorBudgetBurn",objective="rpc-availability",long_window="1h",alertstate="firing"}'


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def api(base, path, **params):
    url = f"{base}{path}?{urllib.parse.urlencode(params)}"
    with urllib.request.urlopen(url, timeout=10) as r:
        body = json.load(r)
    if body.get("status") != "success":
        raise RuntimeError(f"{url}: {body}")
    return body["data"]


def wait_for(what, f, limit=60):
    start = time.time()
    while time.time() - start < limit:
        try:
            if f():
                return
        except OSError:
            pass
        time.sleep(0.5)
    sys.exit(f"{what} did not come up within {limit} s")


def nice_max(x):
    """A round axis maximum at or above x."""
    step = 1.0
    while step * 10 < x:
        step *= 10
    while step > x:
        step /= 10
    for m in (1, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10):
        if step * m >= x:
            return step * m
    return step * 10


def chart(title, points, fmt, t0, t1, firing, first, ratio):
    """One SVG chart: a line over [t0, t1], the firing windows shaded."""
    w, h, left, right, up, down = 900, 190, 70, 20, 30, 30
    pw, ph = w - left - right, h - up - down
    top = max([v for _, v in points] + [1e-9])
    # A ratio's axis ends at 100 %.
    ymax = 1.0 if ratio and top <= 1.0 else nice_max(top * 1.05)

    def x(t):
        return left + (t - t0) / (t1 - t0) * pw

    def y(v):
        return up + ph - v / ymax * ph

    out = [f'<svg width="{w}" height="{h}" xmlns="http://www.w3.org/2000/svg">']
    out.append(f'<text x="{left}" y="18" font-size="15" font-weight="bold">{escape(title)}</text>')
    for a, b in firing:
        out.append(
            f'<rect x="{x(a):.1f}" y="{up}" width="{max(x(b) - x(a), 1):.1f}" height="{ph}" '
            f'fill="#e53935" fill-opacity="0.15"/>'
        )
        if first:
            out.append(
                f'<text x="{x(a) + 6:.1f}" y="{up + ph * 0.55:.1f}" font-size="13" fill="#c62828">'
                f"ErrorBudgetBurn (page, 1h/5m) firing</text>"
            )
    for a, b in [(t0 + BURST[0], t0 + BURST[0] + BURST[1])]:
        if first:
            out.append(
                f'<text x="{(x(a) + x(b)) / 2:.1f}" y="{up + ph - 8}" font-size="13" fill="#616161" '
                f'text-anchor="middle">every RPC fails</text>'
            )
        out.append(
            f'<line x1="{x(a):.1f}" x2="{x(a):.1f}" y1="{up}" y2="{up + ph}" stroke="#757575" stroke-dasharray="4 3"/>'
        )
        out.append(
            f'<line x1="{x(b):.1f}" x2="{x(b):.1f}" y1="{up}" y2="{up + ph}" stroke="#757575" stroke-dasharray="4 3"/>'
        )
    for i in range(5):
        v = ymax * i / 4
        out.append(
            f'<line x1="{left}" x2="{left + pw}" y1="{y(v):.1f}" y2="{y(v):.1f}" stroke="#e0e0e0"/>'
            f'<text x="{left - 8}" y="{y(v) + 4:.1f}" font-size="12" text-anchor="end">{fmt(v)}</text>'
        )
    for s in range(0, int(t1 - t0) + 1, 30):
        out.append(
            f'<text x="{x(t0 + s):.1f}" y="{h - 8}" font-size="12" text-anchor="middle">{s} s</text>'
        )
    path = " ".join(f"{x(t):.1f},{y(v):.1f}" for t, v in points)
    out.append(f'<polyline points="{path}" fill="none" stroke="#1e88e5" stroke-width="2"/>')
    out.append("</svg>")
    return "".join(out)


def main():
    out_png = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "docs" / "operations.png"
    chromium = shutil.which("chromium") or sys.exit("needs Debian's chromium (apt-get install chromium)")
    shutil.which("prometheus") or sys.exit("needs Debian's prometheus (apt-get install prometheus)")
    subprocess.run(["cargo", "build", "--example", "restate"], cwd=ROOT, check=True)
    target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    restate = target / "debug" / "examples" / "restate"
    work = Path(tempfile.mkdtemp(prefix="spanmetrics-picture-"))
    rules = work / "rules.yml"
    rules.write_text(
        subprocess.run(
            [restate, "--print-rules", "--fast-page", "0"], check=True, capture_output=True, text=True
        ).stdout
    )
    example, prom = free_port(), free_port()
    (work / "prometheus.yml").write_text(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        f"rule_files:\n  - '{rules}'\n"
        f"scrape_configs:\n  - job_name: restate\n    static_configs:\n      - targets: ['127.0.0.1:{example}']\n"
    )
    procs = []
    try:
        procs.append(
            subprocess.Popen(
                [restate, "--listen", f"127.0.0.1:{example}", "--duration", str(RUN_SECONDS + 30),
                 "--error-burst", f"{BURST[0]},{BURST[1]}"],
                stdout=subprocess.DEVNULL,
            )
        )
        wait_for("the example", lambda: urllib.request.urlopen(f"http://127.0.0.1:{example}/metrics", timeout=2))
        t0 = time.time()
        procs.append(
            subprocess.Popen(
                ["prometheus", f"--config.file={work / 'prometheus.yml'}",
                 f"--storage.tsdb.path={work / 'data'}", f"--web.listen-address=127.0.0.1:{prom}"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )
        )
        base = f"http://127.0.0.1:{prom}"
        wait_for("prometheus", lambda: urllib.request.urlopen(f"{base}/-/ready", timeout=2))
        print(f"running {RUN_SECONDS} s with an error burst from {BURST[0]} s for {BURST[1]} s ...", flush=True)
        time.sleep(max(0, t0 + RUN_SECONDS - time.time()))
        t1 = time.time()
        series = []
        for title, q, fmt in QUERIES:
            data = api(base, "/api/v1/query_range", query=q, start=t0, end=t1, step=1)
            points = [(float(t), float(v)) for r in data["result"] for t, v in r["values"] if v not in ("NaN", "+Inf")]
            series.append((title, points, fmt))
        data = api(base, "/api/v1/query_range", query=ALERT, start=t0, end=t1, step=1)
        stamps = sorted(float(t) for r in data["result"] for t, _ in r["values"])
        firing = []
        for t in stamps:
            if firing and t - firing[-1][1] <= 2:
                firing[-1][1] = t
            else:
                firing.append([t, t])
        if not firing:
            sys.exit("the alert never fired: nothing to mark")
    finally:
        for p in procs:
            p.terminate()
            p.wait()
    charts = "".join(
        chart(title, points, fmt, t0, t1, firing, i == 0, "ratio" in title)
        for i, (title, points, fmt) in enumerate(series)
    )
    span = ", ".join(f"{a - t0:.0f}-{b - t0:.0f} s" for a, b in firing)
    html = (
        "<html><body style='margin:0;font-family:sans-serif;background:#fff'>"
        "<div style='padding:10px 20px'><div style='font-size:17px;margin-bottom:6px'>"
        "restate example, every RPC failing from 40 s to 160 s (dashed): objective "
        f"<b>rpc-availability</b> (95 %), fast page alert firing {escape(span)} (shaded)</div>"
        f"{charts}</div></body></html>"
    )
    page = work / "picture.html"
    page.write_text(html)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={work / 'chromium'}", "--hide-scrollbars", f"--screenshot={out_png}",
         "--window-size=940,660", page.as_uri()],
        check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    print(f"wrote {out_png} (alert firing {span})")


if __name__ == "__main__":
    main()
