//! A xenstore stand-in for unit tests of the frontend readers: a map of nodes that
//! answers READ and nothing else.

use std::collections::HashMap;
use xenstore::client::{ClientError, XsOps};
use xenstore::wire::{MsgType, XsError};

/// Nodes by absolute path; any request other than a READ of a present node fails
/// with ENOENT.
#[derive(Debug, Default)]
pub(crate) struct MapXs(pub(crate) HashMap<String, String>);

impl XsOps for MapXs {
    fn raw_request(&mut self, kind: MsgType, payload: Vec<u8>) -> Result<Vec<u8>, ClientError> {
        let path =
            String::from_utf8_lossy(payload.split(|b| *b == 0).next().unwrap_or(&[])).into_owned();
        match (kind, self.0.get(&path)) {
            (MsgType::Read, Some(v)) => Ok(v.as_bytes().to_vec()),
            _ => Err(ClientError::Xs {
                request: kind,
                arg: path,
                error: XsError::Enoent,
            }),
        }
    }
}

/// A frontend directory `/fe` holding `nodes` (names relative to it).
pub(crate) fn fe(nodes: &[(&str, &str)]) -> MapXs {
    MapXs(
        nodes
            .iter()
            .map(|(k, v)| (format!("/fe/{k}"), v.to_string()))
            .collect(),
    )
}
