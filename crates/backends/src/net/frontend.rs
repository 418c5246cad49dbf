//! The netif handshake nodes (netif.h "Frontend/Backend XenBus Nodes"; Linux
//! xen-netfront `talk_to_netback` / `write_queue_xenstore_keys` writes them,
//! xen-netback `connect` / `connect_data_rings` reads them): the features the
//! backend publishes before InitWait, and the frontend's rings, event channels
//! and features, read and bounded here (frontend data is hostile).

use xen::abi::xen::{EvtchnPort, GrantRef};
use xenstore::client::{ClientError, XsOps};

/// Queues rxnetback offers (`multi-queue-max-queues`).
pub const MAX_QUEUES: u32 = 4;

/// The features published in the backend directory before InitWait.
pub fn backend_features(max_queues: u32) -> Vec<(String, String)> {
    [
        ("feature-sg", "1".to_string()),
        ("feature-gso-tcpv4", "1".to_string()),
        ("feature-gso-tcpv6", "1".to_string()),
        ("feature-ipv6-csum-offload", "1".to_string()),
        ("feature-rx-copy", "1".to_string()),
        ("feature-rx-flip", "0".to_string()),
        ("feature-split-event-channels", "1".to_string()),
        ("feature-multicast-control", "1".to_string()),
        ("multi-queue-max-queues", max_queues.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

/// How a queue's events arrive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueEvents {
    /// `event-channel`: one port for both rings.
    Shared(EvtchnPort),
    /// `event-channel-tx` and `event-channel-rx` (feature-split-event-channels).
    Split { tx: EvtchnPort, rx: EvtchnPort },
}

/// One queue's rings (each one page).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueRings {
    pub tx_ring_ref: GrantRef,
    pub rx_ring_ref: GrantRef,
    pub events: QueueEvents,
}

/// What the frontend asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetFrontend {
    pub queues: Vec<QueueRings>,
    pub sg: bool,
    pub gso_tcpv4: bool,
    pub gso_tcpv6: bool,
    /// Checksum offload for IPv4 (on unless `feature-no-csum-offload` = 1).
    pub csum_ipv4: bool,
    pub csum_ipv6: bool,
    pub rx_notify: bool,
    /// `request-multicast-control`: filter multicast frames by the list the
    /// frontend sends (sampled at connect; no dynamic control is offered).
    pub mcast_control: bool,
}

/// Why a frontend cannot be connected.
#[derive(Debug, thiserror::Error)]
pub enum FrontendError {
    #[error("xenstore request failed")]
    Xenstore(#[from] ClientError),
    #[error("{path} is missing")]
    Missing { path: String },
    #[error("{path} = {value:?} is not a number")]
    BadNumber { path: String, value: String },
    #[error("the frontend asked for {asked} queues, not 1..={max}")]
    Queues { asked: u32, max: u32 },
    #[error("the frontend does not do request-rx-copy (page flipping is not supported)")]
    NoRxCopy,
    #[error("{path}: event-channel-tx without event-channel-rx")]
    HalfSplit { path: String },
}

fn number<X: XsOps + ?Sized>(xs: &mut X, path: String) -> Result<Option<u32>, FrontendError> {
    match xs.try_read(&path)? {
        None => Ok(None),
        Some(v) => {
            let value = String::from_utf8_lossy(&v).into_owned();
            match value.trim().parse() {
                Ok(n) => Ok(Some(n)),
                Err(_) => Err(FrontendError::BadNumber { path, value }),
            }
        }
    }
}

fn need<X: XsOps + ?Sized>(xs: &mut X, path: String) -> Result<u32, FrontendError> {
    number(xs, path.clone())?.ok_or(FrontendError::Missing { path })
}

/// A boolean feature node: absent means `default`, else `1` is true.
fn flag<X: XsOps + ?Sized>(xs: &mut X, path: String, default: bool) -> Result<bool, FrontendError> {
    Ok(number(xs, path)?.map_or(default, |n| n == 1))
}

fn read_queue<X: XsOps + ?Sized>(xs: &mut X, dir: &str) -> Result<QueueRings, FrontendError> {
    let tx_ring_ref = need(xs, format!("{dir}/tx-ring-ref"))?;
    let rx_ring_ref = need(xs, format!("{dir}/rx-ring-ref"))?;
    let events = match number(xs, format!("{dir}/event-channel-tx"))? {
        Some(tx) => {
            let rx = number(xs, format!("{dir}/event-channel-rx"))?.ok_or_else(|| {
                FrontendError::HalfSplit {
                    path: dir.to_string(),
                }
            })?;
            QueueEvents::Split { tx, rx }
        }
        None => QueueEvents::Shared(need(xs, format!("{dir}/event-channel"))?),
    };
    Ok(QueueRings {
        tx_ring_ref,
        rx_ring_ref,
        events,
    })
}

/// Reads what the frontend at `frontend` wrote before Connected. A single
/// queue's keys are in the frontend directory itself, several queues' in
/// `queue-N/` (as netfront writes them).
pub fn read_frontend<X: XsOps + ?Sized>(
    xs: &mut X,
    frontend: &str,
    max_queues: u32,
) -> Result<NetFrontend, FrontendError> {
    let asked = number(xs, format!("{frontend}/multi-queue-num-queues"))?.unwrap_or(1);
    if asked == 0 || asked > max_queues {
        return Err(FrontendError::Queues {
            asked,
            max: max_queues,
        });
    }
    if !flag(xs, format!("{frontend}/request-rx-copy"), false)? {
        return Err(FrontendError::NoRxCopy);
    }
    let queues = if asked == 1 {
        vec![read_queue(xs, frontend)?]
    } else {
        (0..asked)
            .map(|i| read_queue(xs, &format!("{frontend}/queue-{i}")))
            .collect::<Result<_, _>>()?
    };
    Ok(NetFrontend {
        queues,
        sg: flag(xs, format!("{frontend}/feature-sg"), false)?,
        gso_tcpv4: flag(xs, format!("{frontend}/feature-gso-tcpv4"), false)?,
        gso_tcpv6: flag(xs, format!("{frontend}/feature-gso-tcpv6"), false)?,
        csum_ipv4: !flag(xs, format!("{frontend}/feature-no-csum-offload"), false)?,
        csum_ipv6: flag(xs, format!("{frontend}/feature-ipv6-csum-offload"), false)?,
        rx_notify: flag(xs, format!("{frontend}/feature-rx-notify"), false)?,
        mcast_control: flag(xs, format!("{frontend}/request-multicast-control"), false)?,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    use crate::test_xs::{fe, MapXs};

    /// What Linux netfront writes for one queue with split event channels.
    fn netfront_one_queue() -> Vec<(&'static str, &'static str)> {
        vec![
            ("tx-ring-ref", "9"),
            ("rx-ring-ref", "10"),
            ("event-channel-tx", "5"),
            ("event-channel-rx", "6"),
            ("request-rx-copy", "1"),
            ("feature-rx-notify", "1"),
            ("feature-sg", "1"),
            ("feature-gso-tcpv4", "1"),
            ("feature-gso-tcpv6", "1"),
            ("feature-ipv6-csum-offload", "1"),
        ]
    }

    #[test]
    fn one_queue_split_events() {
        let f = read_frontend(&mut fe(&netfront_one_queue()), "/fe", MAX_QUEUES).unwrap();
        assert_eq!(
            f.queues,
            vec![QueueRings {
                tx_ring_ref: 9,
                rx_ring_ref: 10,
                events: QueueEvents::Split { tx: 5, rx: 6 }
            }]
        );
        assert!(f.sg && f.gso_tcpv4 && f.gso_tcpv6 && f.csum_ipv4 && f.csum_ipv6 && f.rx_notify);
    }

    #[test]
    fn two_queues_in_subdirectories() {
        let mut xs = fe(&[
            ("multi-queue-num-queues", "2"),
            ("request-rx-copy", "1"),
            ("feature-no-csum-offload", "1"),
            ("queue-0/tx-ring-ref", "1"),
            ("queue-0/rx-ring-ref", "2"),
            ("queue-0/event-channel", "7"),
            ("queue-1/tx-ring-ref", "3"),
            ("queue-1/rx-ring-ref", "4"),
            ("queue-1/event-channel", "8"),
        ]);
        let f = read_frontend(&mut xs, "/fe", MAX_QUEUES).unwrap();
        assert_eq!(f.queues.len(), 2);
        assert_eq!(f.queues[1].tx_ring_ref, 3);
        assert_eq!(f.queues[1].events, QueueEvents::Shared(8));
        assert!(!f.csum_ipv4 && !f.sg);
    }

    #[test]
    fn hostile_frontends_are_refused() {
        let with = |k: &'static str, v: &'static str| {
            let mut n = netfront_one_queue();
            n.retain(|(key, _)| *key != k);
            if !v.is_empty() {
                n.push((k, v));
            }
            fe(&n)
        };
        let r = |mut xs: MapXs| read_frontend(&mut xs, "/fe", MAX_QUEUES);
        assert!(matches!(
            r(with("multi-queue-num-queues", "5")),
            Err(FrontendError::Queues { asked: 5, max: 4 })
        ));
        assert!(matches!(
            r(with("multi-queue-num-queues", "0")),
            Err(FrontendError::Queues { asked: 0, .. })
        ));
        assert!(matches!(
            r(with("request-rx-copy", "")),
            Err(FrontendError::NoRxCopy)
        ));
        assert!(matches!(
            r(with("tx-ring-ref", "")),
            Err(FrontendError::Missing { path }) if path == "/fe/tx-ring-ref"
        ));
        assert!(matches!(
            r(with("rx-ring-ref", "-1")),
            Err(FrontendError::BadNumber { .. })
        ));
        assert!(matches!(
            r(with("event-channel-rx", "")),
            Err(FrontendError::HalfSplit { .. })
        ));
        // Two queues announced, one written.
        let mut n = netfront_one_queue();
        n.push(("multi-queue-num-queues", "2"));
        assert!(matches!(
            r(fe(&n)),
            Err(FrontendError::Missing { path }) if path == "/fe/queue-0/tx-ring-ref"
        ));
    }

    #[test]
    fn backend_features_offer_what_netfront_needs() {
        let f = backend_features(MAX_QUEUES);
        let get = |k: &str| f.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("feature-rx-copy"), Some("1"));
        assert_eq!(get("feature-split-event-channels"), Some("1"));
        assert_eq!(get("feature-multicast-control"), Some("1"));
        assert_eq!(get("multi-queue-max-queues"), Some("4"));
    }
}
