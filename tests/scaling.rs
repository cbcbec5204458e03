//! Inherited labels in deep span trees: exact values and counts at 10,000 levels, with ancestors
//! that record late, shadow the value, keep no state of the layer, are hidden from it by a
//! per-layer filter, or belong to another layer of this crate. (How much work a lookup does is
//! counted exactly by the unit tests in `src/state.rs`; nothing here measures time.)
//!
//! Spans are created iteratively, each the explicit child of the previous one, and closed deepest
//! first, so nothing recurses 10,000 deep.

mod common;

use common::{Harness, TestRecorder};
use std::sync::Arc;
use tracing::field::Empty;
use tracing::{Span, dispatcher};
use tracing_spanmetrics::{Condition, Label, Metric, SpanMetrics, Spans};
use tracing_subscriber::filter::filter_fn;
use tracing_subscriber::prelude::*;

const DEPTH: usize = 10_000;
/// The level of the span that shadows `tenant` for everything below it.
const MID: usize = 5_000;

/// What the span at `level` (1-based; the root is level 0) is.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Kind {
    /// Measured: no fields, every label inherited.
    Level,
    /// Declares `tenant = "beta"`: shadows the root's value below it.
    Mid,
    /// No field and no rule: the layer keeps no state for it.
    Plain,
    /// Declares `tenant = "shadow"`, but the layer's per-layer filter hides it.
    Hidden,
}

fn kind(level: usize) -> Kind {
    if level == MID {
        Kind::Mid
    } else if level % 10 == 0 {
        Kind::Plain
    } else if level % 7 == 0 {
        Kind::Hidden
    } else {
        Kind::Level
    }
}

/// `Level` spans strictly above `MID` and strictly below it.
fn levels_above_and_below() -> (usize, usize) {
    let count = |r: std::ops::RangeInclusive<usize>| r.filter(|l| kind(*l) == Kind::Level).count();
    (count(1..=MID - 1), count(MID + 1..=DEPTH))
}

/// A layer that enables every span and does nothing.
struct EveryLevel;

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for EveryLevel {}

/// A chain of `DEPTH` spans under `root`, each the child of the previous one.
fn chain(root: &Span) -> Vec<Span> {
    let mut spans: Vec<Span> = Vec::with_capacity(DEPTH);
    for level in 1..=DEPTH {
        let parent = spans.last().unwrap_or(root).clone();
        spans.push(match kind(level) {
            Kind::Level => tracing::info_span!(parent: &parent, "level"),
            Kind::Mid => tracing::info_span!(parent: &parent, "mid", tenant = "beta"),
            Kind::Plain => tracing::info_span!(parent: &parent, "plain"),
            Kind::Hidden => tracing::info_span!(parent: &parent, "hidden", tenant = "shadow"),
        });
    }
    spans
}

/// Closes the chain deepest first (a close then never cascades up the chain).
fn close(mut spans: Vec<Span>) {
    while let Some(span) = spans.pop() {
        drop(span);
    }
}

#[test]
fn labels_inherited_through_ten_thousand_levels() {
    let (above, below) = levels_above_and_below();
    // 4,999 levels above `MID`: 499 plain, 643 hidden; 5,000 below it: 500 plain, 643 hidden.
    assert_eq!((above, below), (3_857, 3_857));
    let mut h = Harness::new(
        SpanMetrics::builder()
            .metric(
                Metric::counter("level.total")
                    .spans(Spans::named("level"))
                    .labels(["tenant", "zone"]),
            )
            .metric(
                Metric::counter("level_own.total")
                    .spans(Spans::named("level"))
                    .label(Label::field("tenant").own_only().default("none")),
            )
            .metric(
                Metric::counter("level_in_eu.total")
                    .spans(Spans::named("level"))
                    .when(Condition::field("zone").one_of(["eu"])),
            )
            // Resolved when each span opens, top down, before the root records `tenant`.
            .metric(
                Metric::gauge("level.open")
                    .spans(Spans::named("level"))
                    .in_flight()
                    .label("tenant"),
            ),
    );
    let layer = h
        .take_layer()
        .with_filter(filter_fn(|m| m.name() != "hidden"));
    // The unfiltered layer keeps `hidden` spans alive in the registry (were every layer to
    // disable them, tracing would not create them and the chain would break there).
    let subscriber = tracing_subscriber::registry().with(layer).with(EveryLevel);
    tracing::subscriber::with_default(subscriber, || {
        let root = tracing::info_span!("root", tenant = Empty, zone = "eu");
        let spans = chain(&root);
        // Recorded after every level opened: seen by every level that closes later.
        root.record("tenant", "acme");
        let m = h.snapshot();
        assert_eq!(m.gauge("level.open", &[]), Some(above as f64));
        assert_eq!(
            m.gauge("level.open", &[("tenant", "beta")]),
            Some(below as f64)
        );
        assert_eq!(m.series("level.total").len(), 0);
        close(spans);
    });
    let m = h.snapshot();
    assert_eq!(
        m.counter("level.total", &[("tenant", "acme"), ("zone", "eu")]),
        Some(above as u64)
    );
    assert_eq!(
        m.counter("level.total", &[("tenant", "beta"), ("zone", "eu")]),
        Some(below as u64)
    );
    assert_eq!(m.series("level.total").len(), 2);
    assert_eq!(
        m.counter("level_own.total", &[("tenant", "none")]),
        Some((above + below) as u64)
    );
    assert_eq!(m.series("level_own.total").len(), 1);
    assert_eq!(
        m.counter("level_in_eu.total", &[]),
        Some((above + below) as u64)
    );
    assert_eq!(m.gauge("level.open", &[]), Some(0.0));
    assert_eq!(m.gauge("level.open", &[("tenant", "beta")]), Some(0.0));
    assert_eq!(m.series("level.open").len(), 2);
}

/// Two layers of this crate in one subscriber, each with its own rules and per-layer filter,
/// each inheriting through the other's spans: each reads only what its own view of the tree
/// says.
#[test]
fn two_layers_inherit_through_their_own_view_of_a_deep_tree() {
    let recorder = Arc::new(TestRecorder::default());
    // Sees every span but `hidden`; keeps state for `level`, `mid` and the root.
    let a = SpanMetrics::builder()
        .metric(
            Metric::counter("a.total")
                .spans(Spans::named("level"))
                .label("tenant"),
        )
        .with_recorder(recorder.clone())
        .build()
        .unwrap()
        .with_filter(filter_fn(|m| m.name() != "hidden"));
    // Sees every span but `mid`: `hidden` is the nearest span it sees that declares `tenant`.
    let b = SpanMetrics::builder()
        .metric(
            Metric::counter("b.total")
                .spans(Spans::named("level"))
                .label(Label::field("tenant").rename("t")),
        )
        .with_recorder(recorder.clone())
        .build()
        .unwrap()
        .with_filter(filter_fn(|m| m.name() != "mid"));
    let subscriber = tracing_subscriber::registry().with(a).with(b);
    tracing::subscriber::with_default(subscriber, || {
        let root = tracing::info_span!("root", tenant = "acme");
        close(chain(&root));
    });
    let (above, below) = levels_above_and_below();
    let m = recorder.snapshot();
    assert_eq!(
        m.counter("a.total", &[("tenant", "acme")]),
        Some(above as u64)
    );
    assert_eq!(
        m.counter("a.total", &[("tenant", "beta")]),
        Some(below as u64)
    );
    assert_eq!(m.series("a.total").len(), 2);
    // For `b`, every level below level 7 (the first `hidden`) inherits `shadow`.
    let above_7 = (1..7).filter(|l| kind(*l) == Kind::Level).count();
    assert_eq!(above_7, 6);
    assert_eq!(m.counter("b.total", &[("t", "acme")]), Some(6));
    assert_eq!(
        m.counter("b.total", &[("t", "shadow")]),
        Some((above + below - 6) as u64)
    );
    assert_eq!(m.series("b.total").len(), 2);
}

/// Every level declares the field but only the deepest records it: the others pass over each
/// other to the root, which records its value after every level opened. (The one case where a
/// lookup visits every ancestor that declares the field: see `src/state.rs`.)
#[test]
fn levels_that_declare_the_field_but_never_record_it_are_passed_over() {
    let mut h = Harness::new(
        SpanMetrics::builder().metric(
            Metric::counter("level.total")
                .spans(Spans::named("level"))
                .label(Label::field("tenant").default("none")),
        ),
    );
    let d = h.dispatch();
    dispatcher::with_default(&d, || {
        let root = tracing::info_span!("root", tenant = Empty);
        let mut spans: Vec<Span> = Vec::with_capacity(1_000);
        for _ in 0..1_000 {
            let parent = spans.last().unwrap_or(&root).clone();
            spans.push(tracing::info_span!(parent: &parent, "level", tenant = Empty));
        }
        // The deepest level records its own value; the others record nothing.
        spans[999].record("tenant", "own");
        root.record("tenant", "acme");
        close(spans);
    });
    let m = h.snapshot();
    assert_eq!(m.counter("level.total", &[("tenant", "own")]), Some(1));
    assert_eq!(m.counter("level.total", &[("tenant", "acme")]), Some(999));
    assert_eq!(m.series("level.total").len(), 2);
}

/// Spans opened before a reload keep the configuration they started with, which may not
/// inherit the fields the new one does (so they keep no links for them): lookups from spans of
/// the new configuration read through them all the same.
#[test]
fn lookups_read_through_spans_of_a_replaced_configuration() {
    let recorder = Arc::new(TestRecorder::default());
    // The old configuration: state for every span, nothing inherited.
    let old = SpanMetrics::builder()
        .metric(Metric::counter("old.total").label(Label::field("tenant").own_only()))
        .with_recorder(recorder.clone());
    let new = SpanMetrics::builder()
        .metric(
            Metric::counter("new.total")
                .spans(Spans::named("level"))
                .label("tenant"),
        )
        .with_recorder(recorder.clone());
    let layer = old.build().unwrap();
    let reload = layer.reload_handle();
    let subscriber = tracing_subscriber::registry().with(layer);
    tracing::subscriber::with_default(subscriber, || {
        let root = tracing::info_span!("root", tenant = "acme");
        let recorded = tracing::info_span!(parent: &root, "mid", tenant = Empty);
        let unrecorded = tracing::info_span!(parent: &recorded, "mid", tenant = Empty);
        reload.reload(new).unwrap();
        // Under `unrecorded`: read through it (never recorded) to `recorded` once it records.
        let mut spans: Vec<Span> = Vec::with_capacity(1_000);
        for _ in 0..1_000 {
            let parent = spans.last().unwrap_or(&unrecorded).clone();
            spans.push(tracing::info_span!(parent: &parent, "level"));
        }
        recorded.record("tenant", "beta");
        close(spans);
        drop(unrecorded);
        // Under `root` alone: its value.
        let mut spans: Vec<Span> = Vec::with_capacity(1_000);
        for _ in 0..1_000 {
            let parent = spans.last().unwrap_or(&root).clone();
            spans.push(tracing::info_span!(parent: &parent, "level"));
        }
        close(spans);
    });
    let m = recorder.snapshot();
    assert_eq!(m.counter("new.total", &[("tenant", "beta")]), Some(1_000));
    assert_eq!(m.counter("new.total", &[("tenant", "acme")]), Some(1_000));
    assert_eq!(m.series("new.total").len(), 2);
    // The old configuration counted its own three spans.
    assert_eq!(m.counter("old.total", &[("tenant", "acme")]), Some(1));
    assert_eq!(m.counter("old.total", &[("tenant", "beta")]), Some(1));
    assert_eq!(m.counter("old.total", &[]), Some(1));
}
