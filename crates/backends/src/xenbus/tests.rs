#![allow(clippy::unwrap_used)]
use super::*;

use crate::test_xs::fe;

#[test]
fn one_page_ring() {
    let mut xs = fe(&[
        ("ring-ref", "8"),
        ("event-channel", "5"),
        ("protocol", NATIVE_PROTOCOL),
    ]);
    let r = read_frontend_rings(&mut xs, "/fe", 0).unwrap();
    assert_eq!(r.ring_refs, vec![8]);
    assert_eq!(r.event_channel, 5);
}

#[test]
fn multi_page_ring_within_the_limit_only() {
    let mut xs = fe(&[
        ("ring-page-order", "1"),
        ("ring-ref0", "8"),
        ("ring-ref1", "9"),
        ("event-channel", "5"),
    ]);
    assert_eq!(
        read_frontend_rings(&mut xs, "/fe", 2).unwrap().ring_refs,
        vec![8, 9]
    );
    assert!(matches!(
        read_frontend_rings(&mut xs, "/fe", 0),
        Err(XenbusError::RingOrder { order: 1, max: 0 })
    ));
}

#[test]
fn hostile_frontend_values_are_refused() {
    let mut xs = fe(&[("ring-ref", "eight"), ("event-channel", "5")]);
    assert!(matches!(
        read_frontend_rings(&mut xs, "/fe", 0),
        Err(XenbusError::BadNumber { .. })
    ));
    let mut xs = fe(&[("ring-ref", "8")]);
    assert!(matches!(
        read_frontend_rings(&mut xs, "/fe", 0),
        Err(XenbusError::Missing { .. })
    ));
    let mut xs = fe(&[
        ("ring-ref", "8"),
        ("event-channel", "5"),
        ("protocol", "x86_32-abi-ish"),
    ]);
    assert!(matches!(
        read_frontend_rings(&mut xs, "/fe", 0),
        Err(XenbusError::Protocol(_))
    ));
    let mut xs = fe(&[("ring-page-order", "40"), ("event-channel", "5")]);
    assert!(matches!(
        read_frontend_rings(&mut xs, "/fe", MAX_RING_PAGE_ORDER),
        Err(XenbusError::RingOrder { .. })
    ));
}

#[test]
fn block_queues_one_or_several() {
    // No multi-queue-num-queues: the top-level ring.
    let mut xs = fe(&[("ring-ref", "8"), ("event-channel", "5")]);
    let q = read_frontend_queues(&mut xs, "/fe", 0, 4).unwrap();
    assert_eq!(q.len(), 1);
    assert_eq!((q[0].ring_refs.clone(), q[0].event_channel), (vec![8], 5));
    // Two queues of two pages each, as blkif.h's example writes them.
    let mut xs = fe(&[
        ("multi-queue-num-queues", "2"),
        ("ring-page-order", "1"),
        ("queue-0/ring-ref0", "10"),
        ("queue-0/ring-ref1", "11"),
        ("queue-0/event-channel", "6"),
        ("queue-1/ring-ref0", "12"),
        ("queue-1/ring-ref1", "13"),
        ("queue-1/event-channel", "7"),
    ]);
    let q = read_frontend_queues(&mut xs, "/fe", 1, 4).unwrap();
    let got: Vec<_> = q
        .iter()
        .map(|r| (r.ring_refs.clone(), r.event_channel))
        .collect();
    assert_eq!(got, vec![(vec![10, 11], 6), (vec![12, 13], 7)]);
}

#[test]
fn block_queues_hostile_counts_are_refused() {
    for n in ["0", "5", "4294967295"] {
        let mut xs = fe(&[
            ("multi-queue-num-queues", n),
            ("ring-ref", "8"),
            ("event-channel", "5"),
        ]);
        assert!(
            matches!(
                read_frontend_queues(&mut xs, "/fe", 0, 4),
                Err(XenbusError::Queues { max: 4, .. })
            ),
            "{n}"
        );
    }
    // A queue without its event channel.
    let mut xs = fe(&[
        ("multi-queue-num-queues", "2"),
        ("queue-0/ring-ref", "8"),
        ("queue-0/event-channel", "5"),
        ("queue-1/ring-ref", "9"),
    ]);
    assert!(matches!(
        read_frontend_queues(&mut xs, "/fe", 0, 4),
        Err(XenbusError::Missing { path }) if path == "/fe/queue-1/event-channel"
    ));
}
