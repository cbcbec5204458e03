//! Model-based property test: random programs of span operations run through the layer and
//! through a plain reference model; every metric must read exactly what the model computes.
//!
//! A program creates spans (three names, contextual or explicit parents, a label field of
//! every type tracing supports, declared or recorded later), records fields, enters and exits
//! (nested re-entry included), emits events (ticks with labels, milestones, ERROR events,
//! `error` fields), advances a mock clock, and drops span handles on up to four threads. The
//! model knows tracing's rules: a span closes when its handle and every entered guard are gone
//! and all its children have closed.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;

use common::TestRecorder;
use proptest::prelude::*;
use tracing::field::Empty;
use tracing::{Level, Span};
use tracing_spanmetrics::{Condition, EventMatch, Label, Metric, SpanMetrics, SpanMetricsBuilder};
use tracing_subscriber::prelude::*;

const NAMES: [&str; 3] = ["a", "b", "c"];

/// A label value of each type a field can take.
#[derive(Debug, Clone, Copy, PartialEq)]
enum V {
    U(u64),
    I(i64),
    F(f64),
    B(bool),
    S(&'static str),
    D(&'static str),
}

impl V {
    fn text(self) -> String {
        match self {
            V::U(v) => v.to_string(),
            V::I(v) => v.to_string(),
            V::F(v) => v.to_string(),
            V::B(v) => v.to_string(),
            V::S(v) => v.to_owned(),
            V::D(v) => format!("{v:?}"),
        }
    }

    fn record(self, span: &Span, field: &str) {
        match self {
            V::U(v) => span.record(field, v),
            V::I(v) => span.record(field, v),
            V::F(v) => span.record(field, v),
            V::B(v) => span.record(field, v),
            V::S(v) => span.record(field, v),
            V::D(v) => span.record(field, tracing::field::debug(v)),
        };
    }
}

fn value() -> impl Strategy<Value = V> {
    prop_oneof![
        (0u64..3).prop_map(V::U),
        (-2i64..0).prop_map(V::I),
        Just(V::F(0.5)),
        any::<bool>().prop_map(V::B),
        prop_oneof![Just("x"), Just("y")].prop_map(V::S),
        Just(V::D("q")),
    ]
}

#[derive(Debug, Clone)]
enum Ev {
    /// `tick` with an optional `k` field: counted by `events`.
    Tick(Option<V>),
    /// `mile`: a milestone for the span and its ancestors.
    Mile,
    /// An ERROR-level event.
    ErrorLevel,
    /// A WARN event with an `error` field.
    ErrorField,
    /// Noise.
    Info,
}

#[derive(Debug, Clone)]
enum Op {
    New {
        name: usize,
        parent: Option<usize>,
        k: Option<V>,
    },
    Record {
        span: usize,
        p: bool,
        value: V,
    },
    Enter(usize),
    Exit,
    Event {
        parent: Option<usize>,
        ev: Ev,
    },
    Advance(u64),
    Drop {
        span: usize,
        thread: u8,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let ev = prop_oneof![
        proptest::option::of(value()).prop_map(Ev::Tick),
        Just(Ev::Mile),
        Just(Ev::ErrorLevel),
        Just(Ev::ErrorField),
        Just(Ev::Info),
    ];
    prop_oneof![
        4 => (0..3usize, proptest::option::of(any::<usize>()), proptest::option::of(value()))
            .prop_map(|(name, parent, k)| Op::New { name, parent, k }),
        2 => (any::<usize>(), any::<bool>(), value()).prop_map(|(span, p, value)| Op::Record { span, p, value }),
        2 => any::<usize>().prop_map(Op::Enter),
        2 => Just(Op::Exit),
        3 => (proptest::option::of(any::<usize>()), ev).prop_map(|(parent, ev)| Op::Event { parent, ev }),
        2 => (1u64..20).prop_map(Op::Advance),
        3 => (any::<usize>(), 0u8..4).prop_map(|(span, thread)| Op::Drop { span, thread }),
    ]
}

fn rules() -> SpanMetricsBuilder {
    SpanMetrics::builder()
        .metric(
            Metric::counter("calls")
                .label(Label::span_name("name"))
                .label(Label::field("k").default("none"))
                .label(Label::outcome("result")),
        )
        .metric(Metric::histogram("wall").label(Label::span_name("name")))
        .metric(
            Metric::histogram("busy")
                .busy_time()
                .label(Label::span_name("name")),
        )
        .metric(Metric::gauge("open").label(Label::span_name("name")))
        .metric(Metric::gauge("pinned").in_flight_after("p").label("p"))
        .metric(
            Metric::counter("ticks")
                .events(EventMatch::message("tick"))
                .label(Label::field("k").default("none")),
        )
        .metric(
            Metric::histogram("to_mile")
                .time_to(EventMatch::message("mile"))
                .label(Label::span_name("name")),
        )
        .metric(
            Metric::counter("errors")
                .when(Condition::error())
                .label(Label::span_name("name")),
        )
}

/// What the reference model knows of one span.
#[derive(Debug, Clone)]
struct MSpan {
    name: &'static str,
    parent: Option<usize>,
    k: Option<String>,
    p: Option<String>,
    /// The `p` value the pinned gauge was incremented with.
    pinned: Option<String>,
    start: u64,
    handle: bool,
    guards: u32,
    children: u32,
    closed: bool,
    busy: u64,
    active_since: Option<u64>,
    errored: bool,
    mile: Option<u64>,
}

#[derive(Debug, Default, PartialEq)]
struct Expected {
    calls: BTreeMap<(String, String, String), u64>,
    wall: BTreeMap<String, Vec<u64>>,
    busy: BTreeMap<String, Vec<u64>>,
    open: BTreeMap<String, i64>,
    pinned: BTreeMap<String, i64>,
    ticks: BTreeMap<String, u64>,
    to_mile: BTreeMap<String, Vec<u64>>,
    errors: BTreeMap<String, u64>,
}

struct Model {
    spans: Vec<MSpan>,
    now: u64,
    /// Spans entered on the main thread, innermost last, each with whether it was already on
    /// the stack when entered (the registry then keeps the earlier entry as the current span).
    stack: Vec<(usize, bool)>,
    exp: Expected,
}

impl Model {
    /// The registry's current span: the innermost entry that is not a re-entry.
    fn current(&self) -> Option<usize> {
        self.stack
            .iter()
            .rev()
            .find(|(_, dup)| !dup)
            .map(|(i, _)| *i)
    }

    /// The nearest value of field `k` (or `p`) from span `i` upwards.
    fn inherited(&self, mut i: Option<usize>, p: bool) -> Option<String> {
        while let Some(s) = i {
            let v = if p {
                &self.spans[s].p
            } else {
                &self.spans[s].k
            };
            if v.is_some() {
                return v.clone();
            }
            i = self.spans[s].parent;
        }
        None
    }

    fn try_close(&mut self, i: usize) {
        let s = &self.spans[i];
        if s.closed || s.handle || s.guards > 0 || s.children > 0 {
            return;
        }
        let now = self.now;
        let k = self
            .inherited(Some(i), false)
            .unwrap_or_else(|| "none".into());
        let s = &mut self.spans[i];
        s.closed = true;
        let name = s.name.to_owned();
        let result = if s.errored { "error" } else { "success" };
        *self
            .exp
            .calls
            .entry((name.clone(), k, result.to_owned()))
            .or_default() += 1;
        self.exp
            .wall
            .entry(name.clone())
            .or_default()
            .push(now - s.start);
        self.exp.busy.entry(name.clone()).or_default().push(s.busy);
        *self.exp.open.entry(name.clone()).or_default() -= 1;
        if let Some(p) = s.pinned.clone() {
            *self.exp.pinned.entry(p).or_default() -= 1;
        }
        if let Some(m) = s.mile {
            self.exp
                .to_mile
                .entry(name.clone())
                .or_default()
                .push(m - s.start);
        }
        if s.errored {
            *self.exp.errors.entry(name).or_default() += 1;
        }
        if let Some(parent) = s.parent {
            self.spans[parent].children -= 1;
            self.try_close(parent);
        }
    }
}

/// Runs `ops` through a real subscriber and the model side by side; returns both views.
fn run(ops: &[Op]) -> (Expected, Expected) {
    let recorder = Arc::new(TestRecorder::default());
    let (clock, mock) = quanta::Clock::mock();
    let layer = rules()
        .with_recorder(recorder.clone())
        .with_clock(clock)
        .build()
        .unwrap();
    let dispatch = tracing::Dispatch::new(tracing_subscriber::registry().with(layer));
    let mut model = Model {
        spans: Vec::new(),
        now: 0,
        stack: Vec::new(),
        exp: Expected::default(),
    };
    // Real handles, by span index (None once dropped), and entered guards.
    let mut handles: Vec<Option<Span>> = Vec::new();
    let mut guards: Vec<tracing::span::EnteredSpan> = Vec::new();
    let held = |handles: &Vec<Option<Span>>| -> Vec<usize> {
        (0..handles.len())
            .filter(|i| handles[*i].is_some())
            .collect()
    };

    tracing::dispatcher::with_default(&dispatch, || {
        for op in ops {
            match op.clone() {
                Op::New { name, parent, k } => {
                    let live = held(&handles);
                    let explicit =
                        parent.and_then(|p| (!live.is_empty()).then(|| live[p % live.len()]));
                    let parent_idx = explicit.or(model.current());
                    let span = match (explicit, name) {
                        (Some(p), 0) => {
                            tracing::info_span!(parent: handles[p].as_ref().unwrap(), "a", k = Empty, p = Empty)
                        }
                        (Some(p), 1) => {
                            tracing::info_span!(parent: handles[p].as_ref().unwrap(), "b", k = Empty, p = Empty)
                        }
                        (Some(p), _) => {
                            tracing::info_span!(parent: handles[p].as_ref().unwrap(), "c", k = Empty, p = Empty)
                        }
                        (None, 0) => tracing::info_span!("a", k = Empty, p = Empty),
                        (None, 1) => tracing::info_span!("b", k = Empty, p = Empty),
                        (None, _) => tracing::info_span!("c", k = Empty, p = Empty),
                    };
                    if let Some(v) = k {
                        v.record(&span, "k");
                    }
                    if let Some(p) = parent_idx {
                        model.spans[p].children += 1;
                    }
                    let nm = NAMES[name];
                    *model.exp.open.entry(nm.to_owned()).or_default() += 1;
                    model.spans.push(MSpan {
                        name: nm,
                        parent: parent_idx,
                        k: k.map(V::text),
                        p: None,
                        pinned: None,
                        start: model.now,
                        handle: true,
                        guards: 0,
                        children: 0,
                        closed: false,
                        busy: 0,
                        active_since: None,
                        errored: false,
                        mile: None,
                    });
                    handles.push(Some(span));
                }
                Op::Record { span, p, value } => {
                    let live = held(&handles);
                    if live.is_empty() {
                        continue;
                    }
                    let i = live[span % live.len()];
                    value.record(handles[i].as_ref().unwrap(), if p { "p" } else { "k" });
                    let s = &mut model.spans[i];
                    if p {
                        s.p = Some(value.text());
                        if s.pinned.is_none() {
                            s.pinned = s.p.clone();
                            *model.exp.pinned.entry(value.text()).or_default() += 1;
                        }
                    } else {
                        s.k = Some(value.text());
                    }
                }
                Op::Enter(span) => {
                    let live = held(&handles);
                    if live.is_empty() {
                        continue;
                    }
                    let i = live[span % live.len()];
                    guards.push(handles[i].as_ref().unwrap().clone().entered());
                    let s = &mut model.spans[i];
                    s.guards += 1;
                    if s.guards == 1 {
                        s.active_since = Some(model.now);
                    }
                    let dup = model.stack.iter().any(|(j, _)| *j == i);
                    model.stack.push((i, dup));
                }
                Op::Exit => {
                    let Some((i, _)) = model.stack.pop() else {
                        continue;
                    };
                    drop(guards.pop());
                    let now = model.now;
                    let s = &mut model.spans[i];
                    s.guards -= 1;
                    if s.guards == 0 {
                        s.busy += now - s.active_since.take().unwrap();
                    }
                    model.try_close(i);
                }
                Op::Event { parent, ev } => {
                    let live = held(&handles);
                    let explicit =
                        parent.and_then(|p| (!live.is_empty()).then(|| live[p % live.len()]));
                    let at = explicit.or(model.current());
                    macro_rules! emit {
                        ($($args:tt)*) => {
                            match explicit {
                                Some(p) => tracing::event!(parent: handles[p].as_ref().unwrap(), $($args)*),
                                None => tracing::event!($($args)*),
                            }
                        };
                    }
                    match ev {
                        Ev::Tick(k) => {
                            match k {
                                Some(V::U(v)) => emit!(Level::INFO, k = v, "tick"),
                                Some(V::I(v)) => emit!(Level::INFO, k = v, "tick"),
                                Some(V::F(v)) => emit!(Level::INFO, k = v, "tick"),
                                Some(V::B(v)) => emit!(Level::INFO, k = v, "tick"),
                                Some(V::S(v)) => emit!(Level::INFO, k = v, "tick"),
                                Some(V::D(v)) => emit!(Level::INFO, k = ?v, "tick"),
                                None => emit!(Level::INFO, "tick"),
                            }
                            let label = k
                                .map(V::text)
                                .or_else(|| model.inherited(at, false))
                                .unwrap_or_else(|| "none".into());
                            *model.exp.ticks.entry(label).or_default() += 1;
                        }
                        Ev::Mile => {
                            emit!(Level::INFO, "mile");
                            let mut cur = at;
                            while let Some(s) = cur {
                                if model.spans[s].mile.is_none() {
                                    model.spans[s].mile = Some(model.now);
                                }
                                cur = model.spans[s].parent;
                            }
                        }
                        Ev::ErrorLevel => {
                            emit!(Level::ERROR, "failed");
                            if let Some(s) = at {
                                model.spans[s].errored = true;
                            }
                        }
                        Ev::ErrorField => {
                            emit!(Level::WARN, error = "boom", "retrying");
                            if let Some(s) = at {
                                model.spans[s].errored = true;
                            }
                        }
                        Ev::Info => emit!(Level::INFO, "noise"),
                    }
                }
                Op::Advance(ms) => {
                    mock.increment(std::time::Duration::from_millis(ms));
                    model.now += ms * 1_000_000;
                }
                Op::Drop { span, thread } => {
                    let live = held(&handles);
                    if live.is_empty() {
                        continue;
                    }
                    let i = live[span % live.len()];
                    let h = handles[i].take().unwrap();
                    if thread == 0 {
                        drop(h);
                    } else {
                        // As in an application, the subscriber is the default there too: the
                        // registry closes a parent through the default dispatcher.
                        let d = dispatch.clone();
                        std::thread::spawn(move || {
                            tracing::dispatcher::with_default(&d, || drop(h))
                        })
                        .join()
                        .unwrap();
                    }
                    model.spans[i].handle = false;
                    model.try_close(i);
                }
            }
        }
    });

    // Gauges while spans may still be open, then everything closed.
    let mid_open = read(&recorder).open;
    assert_eq!(
        mid_open
            .into_iter()
            .filter(|(_, v)| *v != 0)
            .collect::<BTreeMap<_, _>>(),
        model
            .exp
            .open
            .iter()
            .filter(|(_, v)| **v != 0)
            .map(|(k, v)| (k.clone(), *v))
            .collect::<BTreeMap<_, _>>(),
        "open spans per name before the end"
    );
    let _default = tracing::dispatcher::set_default(&dispatch);
    while let Some((i, _)) = model.stack.pop() {
        drop(guards.pop());
        let now = model.now;
        let s = &mut model.spans[i];
        s.guards -= 1;
        if s.guards == 0 {
            s.busy += now - s.active_since.take().unwrap();
        }
        model.try_close(i);
    }
    for (i, handle) in handles.iter_mut().enumerate() {
        if let Some(h) = handle.take() {
            drop(h);
            model.spans[i].handle = false;
            model.try_close(i);
        }
    }
    assert!(model.spans.iter().all(|s| s.closed));
    let mut exp = model.exp;
    for v in exp
        .wall
        .values_mut()
        .chain(exp.busy.values_mut())
        .chain(exp.to_mile.values_mut())
    {
        v.sort_unstable();
    }
    (exp, read(&recorder))
}

/// The layer's view, in the model's shape (durations back in integer nanoseconds).
fn read(recorder: &TestRecorder) -> Expected {
    let m = recorder.snapshot();
    let mut out = Expected::default();
    for (key, value) in &m.series {
        let label = |k: &str| {
            key.labels()
                .find(|l| l.key() == k)
                .map(|l| l.value().to_owned())
                .unwrap_or_default()
        };
        let nanos = |v: &Vec<f64>| {
            let mut n: Vec<u64> = v.iter().map(|s| (s * 1e9).round() as u64).collect();
            n.sort_unstable();
            n
        };
        match (key.name(), value) {
            ("calls_total", common::Value::Counter(n)) => {
                out.calls
                    .insert((label("name"), label("k"), label("result")), *n);
            }
            ("wall_seconds", common::Value::Histogram(v)) => {
                out.wall.insert(label("name"), nanos(v));
            }
            ("busy_seconds", common::Value::Histogram(v)) => {
                out.busy.insert(label("name"), nanos(v));
            }
            ("open", common::Value::Gauge(g)) => {
                out.open.insert(label("name"), *g as i64);
            }
            ("pinned", common::Value::Gauge(g)) => {
                out.pinned.insert(label("p"), *g as i64);
            }
            ("ticks_total", common::Value::Counter(n)) => {
                out.ticks.insert(label("k"), *n);
            }
            ("to_mile_seconds", common::Value::Histogram(v)) => {
                out.to_mile.insert(label("name"), nanos(v));
            }
            ("errors_total", common::Value::Counter(n)) => {
                out.errors.insert(label("name"), *n);
            }
            _ => {}
        }
    }
    out
}

fn cases() -> u32 {
    std::env::var("SPANMETRICS_MODEL_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), max_shrink_iters: 2_000, ..ProptestConfig::default() })]

    #[test]
    fn the_layer_reads_what_the_model_computes(ops in proptest::collection::vec(op(), 1..40)) {
        let (expected, actual) = run(&ops);
        prop_assert_eq!(actual, expected);
    }
}

#[test]
fn a_known_program() {
    use Op::*;
    let ops = vec![
        New {
            name: 0,
            parent: None,
            k: Some(V::S("x")),
        },
        Enter(0),
        New {
            name: 1,
            parent: None,
            k: None,
        },
        Advance(5),
        Event {
            parent: None,
            ev: Ev::Mile,
        },
        Record {
            span: 1,
            p: true,
            value: V::U(2),
        },
        Event {
            parent: Some(1),
            ev: Ev::Tick(None),
        },
        Event {
            parent: None,
            ev: Ev::ErrorField,
        },
        Drop { span: 1, thread: 2 },
        Advance(3),
        Exit,
        Drop { span: 0, thread: 0 },
    ];
    let (expected, actual) = run(&ops);
    assert_eq!(actual, expected);
    assert_eq!(
        expected.calls,
        BTreeMap::from([
            (("a".into(), "x".into(), "error".into()), 1),
            (("b".into(), "x".into(), "success".into()), 1),
        ])
    );
    assert_eq!(expected.to_mile["a"], vec![5_000_000]);
    assert_eq!(expected.ticks, BTreeMap::from([("x".into(), 1)]));
    assert_eq!(expected.busy["a"], vec![8_000_000]);
}
