//! Interop: the third-party `xenstore-rs` crate (its tokio client, the one with
//! watches) reads, writes, lists, removes and watches against rxenstored.
//!
//! xenstore-rs finds the daemon through `XENSTORED_PATH`, a process-wide setting:
//! this file therefore holds a single test.

mod common;

use std::time::Duration;

use futures::StreamExt;
use xenstore_rs::tokio::XsTokio;
use xenstore_rs::{AsyncWatch, AsyncXs};

use common::rxenstored;
use xenstore::client::XsOps;

const EVENT_TIMEOUT: Duration = Duration::from_secs(5);

#[test]
fn xenstore_rs_reads_writes_and_watches() {
    let d = rxenstored(&[]);
    // Only this test runs in this process.
    std::env::set_var("XENSTORED_PATH", &d.socket);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut ours = d.client();
    rt.block_on(async {
        let xs = XsTokio::new().await.expect("xenstore-rs connects");
        xs.write("/xrs/a", "hello").await.expect("write");
        xs.write("/xrs/b", "world").await.expect("write");
        assert_eq!(&*xs.read("/xrs/a").await.expect("read"), "hello");
        let mut names: Vec<String> = xs
            .directory("/xrs")
            .await
            .expect("directory")
            .iter()
            .map(|s| s.to_string())
            .collect();
        names.sort();
        assert_eq!(names, ["a", "b"]);
        // What xenstore-rs wrote, our client reads, and the other way round.
        assert_eq!(ours.read("/xrs/b").expect("read"), b"world");
        ours.write("/xrs/c", b"ours").expect("write");
        assert_eq!(&*xs.read("/xrs/c").await.expect("read"), "ours");
        let err = xs.read("/xrs/none").await.expect_err("missing node");
        assert_eq!(err.kind(), std::io::ErrorKind::NotFound, "{err}");

        let mut watch = xs.watch("/xrs").await.expect("watch");
        let first = tokio::time::timeout(EVENT_TIMEOUT, watch.next())
            .await
            .expect("initial event in time")
            .expect("stream open");
        assert_eq!(&*first, "/xrs");
        ours.write("/xrs/a/deep", b"x").expect("write");
        let ev = tokio::time::timeout(EVENT_TIMEOUT, watch.next())
            .await
            .expect("event in time")
            .expect("stream open");
        assert_eq!(&*ev, "/xrs/a/deep");
        xs.rm("/xrs/a").await.expect("rm");
        let ev = tokio::time::timeout(EVENT_TIMEOUT, watch.next())
            .await
            .expect("event in time")
            .expect("stream open");
        assert_eq!(&*ev, "/xrs/a");
        assert!(ours.try_read("/xrs/a/deep").expect("read").is_none());
    });
}
