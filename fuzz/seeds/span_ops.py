#!/usr/bin/env python3
"""Writes the seed inputs of the `span_ops` fuzz target into `fuzz/seeds/span_ops/`.

    python3 fuzz/seeds/span_ops.py

The target reads its input as a program, one operation after another (see
`fuzz/fuzz_targets/span_ops.rs`); an operation is a byte taken modulo 8, followed by its operands:

    0  open a span `s` (fields k, s, p, otel.status_code, all empty)
    1  which field kind value..   record on span `which`: field = [k, s, p, otel.status_code][field % 4],
                                  kind % 7 = 0 u64 (value * 1_000_003), 1 negative i64, 2 f64 (odd
                                  values: NaN), 3 bool, 4 str (text), 5 debug (text), 6 u128
    2  which                      enter span `which` (the guard is kept)
    3                             exit the most recently entered span
    4  n text                     event "tick" with n = n - 100 and s = text
    5                             event "failure" at ERROR
    6  which thread               close span `which`, on another thread if `thread` is odd
    7  text                       a span `child` (s = text) with a WARN "retry" event inside

where `which` picks among the open spans modulo their number and a text is a length byte
followed by that many bytes. Each seed is a short, meaningful program; the fuzzer mutates
from there.
"""

import os

OPEN, RECORD, ENTER, EXIT, TICK, FAIL, CLOSE, CHILD = range(8)
K, S, P, OTEL = range(4)
U64, NEG, F64, BOOL, STR, DEBUG, U128 = range(7)


def text(t):
    b = t.encode()
    return [len(b), *b]


def record(which, field, kind, value=0, t=None):
    ops = [RECORD, which, field, kind, value]
    if t is not None:
        ops += text(t)
    return ops


SEEDS = {
    # Open, enter, record a status, exit, close.
    "one_span": [
        OPEN,
        ENTER, 0,
        *record(0, K, STR, t="200"),
        EXIT,
        CLOSE, 0, 0,
    ],
    # An error status (mapped to a status class), an error event inside, and the OTel status.
    "error_span": [
        OPEN,
        *record(0, K, STR, t="503"),
        *record(0, OTEL, STR, t="error"),
        ENTER, 0,
        FAIL,
        EXIT,
        CLOSE, 0, 0,
    ],
    # Pinned after `p` is recorded, ticks in between, closed on another thread.
    "pinned_tick": [
        OPEN,
        ENTER, 0,
        TICK, 5, *text("a"),
        *record(0, P, STR, t="dp_1"),
        TICK, 250, *text("b"),
        EXIT,
        CLOSE, 0, 1,
    ],
    # Three nested spans, each entered in the one before, closed out of order.
    "nested": [
        OPEN, OPEN, OPEN,
        ENTER, 0, ENTER, 1, ENTER, 2,
        *record(0, S, STR, t="x"),
        *record(1, S, STR, t="y"),
        *record(2, S, DEBUG, t="z"),
        CHILD, *text("c"),
        FAIL,
        EXIT, EXIT, EXIT,
        CLOSE, 1, 0,
        CLOSE, 0, 1,
        CLOSE, 0, 0,
    ],
    # Every value kind recorded on the numeric field `k`.
    "value_kinds": [
        OPEN,
        *record(0, K, U64, 7),
        *record(0, K, NEG, 3),
        *record(0, K, F64, 64),
        *record(0, K, F64, 1),  # NaN
        *record(0, K, BOOL, 1),
        *record(0, K, U128, 0),
        *record(0, K, DEBUG, t="1e3"),
        *record(0, K, STR, t="-0.5"),
        ENTER, 0, TICK, 100, *text(""), EXIT,
        CLOSE, 0, 0,
    ],
    # A span closed while still entered (the guard keeps it alive), then exited.
    "close_while_entered": [
        OPEN,
        ENTER, 0,
        CLOSE, 0, 0,
        TICK, 0, *text("late"),
        EXIT,
    ],
    # More label values than the cardinality limit (8), and one longer than max_label_len (16).
    "cardinality": [
        *[OPEN] * 10,
        *[b for i in range(10) for b in record(i, S, STR, t=f"v{i}")],
        *record(9, S, STR, t="a label value well past sixteen bytes"),
        *[b for _ in range(10) for b in (CLOSE, 0, 0)],
    ],
    # Child spans with label texts, including invalid UTF-8, outside any span.
    "children": [
        CHILD, *text("a"),
        CHILD, 3, 0xFF, 0xFE, 0x41,
        OPEN, ENTER, 0,
        CHILD, *text("inside"),
        EXIT,
        CLOSE, 0, 0,
    ],
    # A truncated program: operands missing at the end read as zeros.
    "truncated": [OPEN, ENTER, 0, RECORD, 0, K, STR, 0, 40, ord("5")],
}


def main():
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "span_ops")
    os.makedirs(out, exist_ok=True)
    for name, program in SEEDS.items():
        with open(os.path.join(out, name), "wb") as f:
            f.write(bytes(program))


if __name__ == "__main__":
    main()
