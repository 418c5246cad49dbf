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
