use std::time::Duration;

use super::*;
use crate::hw::Edge;

fn feed(
    reader: &mut Reader,
    bits: &[bool],
    timing: PulseTiming,
    jitter: f64,
    seed: u64,
    base: Duration,
) -> Vec<ReaderEvent> {
    let mut out = Vec::new();
    for (line, level, at) in pulse_train(bits, timing, jitter, seed) {
        out.extend(reader.edge(
            line,
            Edge {
                level,
                at: base + at,
            },
        ));
    }
    out.extend(reader.finish(base + Duration::from_millis(100)));
    out
}

fn card(f: u32, n: u64) -> CardNumber {
    CardNumber::Formatted {
        facility: f,
        number: n,
    }
}

#[test]
fn decodes_cards_under_fifty_percent_jitter_at_both_timing_extremes() {
    let mut reader = Reader::new();
    let c = card(10, 12345);
    let bits = format::encode_card(&c, None).unwrap();
    for (i, timing) in [PulseTiming::FAST, PulseTiming::TYPICAL, PulseTiming::SLOW]
        .into_iter()
        .enumerate()
    {
        for seed in 0..50 {
            let base = Duration::from_secs(1 + (i as u64) * 100 + seed);
            let events = feed(&mut reader, &bits, timing, 0.5, seed, base);
            assert_eq!(
                events,
                vec![ReaderEvent::Card {
                    card: c.clone(),
                    format: CardFormat::Wiegand26
                }],
                "timing {timing:?} seed {seed}"
            );
        }
    }
    assert_eq!(reader.health().counters.frames_ok, 150);
}

#[test]
fn bits_are_ordered_by_timestamp_not_arrival() {
    // Deliver all D0 edges first, then all D1 edges (two interrupt threads).
    let c = card(200, 4242);
    let bits = format::encode_card(&c, None).unwrap();
    let mut train = pulse_train(&bits, PulseTiming::TYPICAL, 0.0, 0);
    train.sort_by_key(|(line, _, _)| *line == Line::D1);
    let mut reader = Reader::new();
    let mut events = Vec::new();
    for (line, level, at) in train {
        events.extend(reader.edge(line, Edge { level, at }));
    }
    events.extend(reader.finish(Duration::from_secs(1)));
    assert_eq!(
        events,
        vec![ReaderEvent::Card {
            card: c,
            format: CardFormat::Wiegand26
        }]
    );
}

#[test]
fn parity_broken_frame_is_rejected_and_counted() {
    let mut bits = format::encode_card(&card(10, 12345), None).unwrap();
    bits[5] = !bits[5];
    let mut reader = Reader::new();
    let events = feed(
        &mut reader,
        &bits,
        PulseTiming::TYPICAL,
        0.2,
        1,
        Duration::ZERO,
    );
    assert!(
        matches!(&events[..], [ReaderEvent::Rejected(r)] if r.kind == RejectKind::Parity),
        "{events:?}"
    );
    assert_eq!(reader.health().counters.parity_errors, 1);
    assert_eq!(reader.health().counters.frames_ok, 0);
}

#[test]
fn overlapping_pulses_are_noise() {
    let mut reader = Reader::new();
    let us = Duration::from_micros;
    let events = [
        (Line::D0, Level::Low, us(0)),
        (Line::D1, Level::Low, us(20)),
        (Line::D0, Level::High, us(100)),
        (Line::D1, Level::High, us(120)),
    ];
    for (line, level, at) in events {
        reader.edge(line, Edge { level, at });
    }
    let out = reader.finish(us(50_000));
    assert!(
        matches!(&out[..], [ReaderEvent::Rejected(r)] if r.kind == RejectKind::Noise),
        "{out:?}"
    );
    assert_eq!(reader.health().counters.noise, 1);
}

#[test]
fn glitches_are_ignored_and_a_stuck_line_is_noise() {
    let mut reader = Reader::new();
    let us = Duration::from_micros;
    reader.edge(
        Line::D0,
        Edge {
            level: Level::Low,
            at: us(0),
        },
    );
    reader.edge(
        Line::D0,
        Edge {
            level: Level::High,
            at: us(3),
        },
    );
    assert!(
        reader.finish(us(40_000)).is_empty(),
        "a lone glitch is not a frame"
    );
    assert_eq!(reader.health().counters.glitches, 1);

    reader.edge(
        Line::D1,
        Edge {
            level: Level::Low,
            at: us(100_000),
        },
    );
    let out = reader.finish(us(200_000));
    assert!(
        matches!(&out[..], [ReaderEvent::Rejected(r)] if r.kind == RejectKind::Noise),
        "{out:?}"
    );
}

#[test]
fn a_quiet_gap_in_edge_time_splits_frames() {
    let a = format::encode_card(&card(1, 1), None).unwrap();
    let b = format::encode_card(&card(2, 2), None).unwrap();
    let mut reader = Reader::new();
    let mut events = Vec::new();
    for (bits, base) in [(&a, Duration::ZERO), (&b, Duration::from_millis(100))] {
        for (line, level, at) in pulse_train(bits, PulseTiming::TYPICAL, 0.0, 0) {
            events.extend(reader.edge(
                line,
                Edge {
                    level,
                    at: base + at,
                },
            ));
        }
    }
    events.extend(reader.finish(Duration::from_secs(1)));
    assert_eq!(events.len(), 2, "{events:?}");
}

#[test]
fn keypad_digits_then_hash_make_a_pin_in_both_widths() {
    for eight in [false, true] {
        let mut reader = Reader::new();
        let mut events = Vec::new();
        let keys = [1, 2, 3, 4, 5, 6]
            .map(Key::Digit)
            .into_iter()
            .chain([Key::Enter]);
        for (i, key) in keys.enumerate() {
            let base = Duration::from_millis(100 * i as u64);
            events.extend(feed(
                &mut reader,
                &format::encode_key(key, eight),
                PulseTiming::TYPICAL,
                0.3,
                i as u64,
                base,
            ));
        }
        assert_eq!(
            events.last(),
            Some(&ReaderEvent::Pin(PinEntry("123456".into())))
        );
        assert_eq!(events.len(), 7);
    }
}

#[test]
fn star_clears_and_slow_typing_forgets_digits() {
    let mut reader = Reader::new();
    let key = |r: &mut Reader, k: Key, ms: u64| {
        feed(
            r,
            &format::encode_key(k, false),
            PulseTiming::TYPICAL,
            0.0,
            0,
            Duration::from_millis(ms),
        )
    };
    key(&mut reader, Key::Digit(9), 0);
    key(&mut reader, Key::Clear, 100);
    key(&mut reader, Key::Digit(1), 200);
    // 11 s later: the 1 is forgotten.
    key(&mut reader, Key::Digit(2), 11_300);
    let out = key(&mut reader, Key::Enter, 11_400);
    assert_eq!(out, vec![ReaderEvent::Pin(PinEntry("2".into()))]);
}

#[test]
fn at_a_household_gate_star_separates_an_address_and_two_stars_clear() {
    let mut reader = Reader::with_star_separator();
    let mut at = 0;
    let mut keys = |r: &mut Reader, ks: &[Key]| {
        let mut out = Vec::new();
        for k in ks {
            at += 100;
            out = feed(
                r,
                &format::encode_key(*k, false),
                PulseTiming::TYPICAL,
                0.0,
                0,
                Duration::from_millis(at),
            );
        }
        out
    };
    let d = Key::Digit;
    let out = keys(
        &mut reader,
        &[
            d(3),
            Key::Clear,
            d(2),
            Key::Clear,
            d(5),
            d(0),
            d(1),
            Key::Enter,
        ],
    );
    assert_eq!(out, vec![ReaderEvent::Pin(PinEntry("3*2*501".into()))]);
    // A typo: ** clears, and the entry starts again.
    let out = keys(
        &mut reader,
        &[
            d(9),
            Key::Clear,
            Key::Clear,
            d(3),
            d(2),
            d(5),
            d(1),
            Key::Enter,
        ],
    );
    assert_eq!(out, vec![ReaderEvent::Pin(PinEntry("3251".into()))]);
    // A star first is a clear, as at any keypad.
    let out = keys(&mut reader, &[Key::Clear, d(7), Key::Enter]);
    assert_eq!(out, vec![ReaderEvent::Pin(PinEntry("7".into()))]);
    // Elsewhere the star clears at once.
    let mut plain = Reader::new();
    let out = keys(&mut plain, &[d(3), Key::Clear, d(2), Key::Enter]);
    assert_eq!(out, vec![ReaderEvent::Pin(PinEntry("2".into()))]);
}

#[test]
fn a_reader_that_keeps_sending_bad_frames_faults_once_and_recovers() {
    let mut reader = Reader::new();
    let mut bad = format::encode_card(&card(10, 12345), None).unwrap();
    bad[3] = !bad[3];
    let mut faults = 0;
    for i in 0..8u64 {
        let events = feed(
            &mut reader,
            &bad,
            PulseTiming::TYPICAL,
            0.0,
            0,
            Duration::from_millis(200 * i),
        );
        faults += events
            .iter()
            .filter(|e| matches!(e, ReaderEvent::Fault { .. }))
            .count();
    }
    assert_eq!(faults, 1);
    assert!(reader.health().faulted);
    let good = format::encode_card(&card(10, 12345), None).unwrap();
    let events = feed(
        &mut reader,
        &good,
        PulseTiming::TYPICAL,
        0.0,
        0,
        Duration::from_secs(5),
    );
    assert_eq!(events[0], ReaderEvent::Recovered);
    assert!(!reader.health().faulted);
}
