//! xl's channel specification (xl.cfg(5) `channel = [ "CHANNEL_SPEC", ... ]`;
//! tools/xl/xl_parse.c in Xen 4.17): comma-separated `key=value` settings `name`,
//! `connection` (`pty` or `socket`), `path` (socket only) and `backend`. Keys
//! and values are trimmed of white space; unknown keys are ignored with a
//! warning, as xl does. A channel is a secondary PV console named for the guest
//! (`device/console/N/name`); rxconsoled serves `connection=pty` channels.

/// `connection=`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Connection {
    /// A pty in dom0 (`rxl console --num N` attaches to it).
    Pty,
    /// A unix socket at `path` (served by QEMU under xl; not by rxen).
    Socket { path: String },
}

/// One parsed channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelSpec {
    /// The name the guest finds it by (`device/console/N/name`).
    pub name: String,
    pub connection: Connection,
    /// `backend=`: the backend domain's name or id (None: dom0).
    pub backend: Option<String>,
    /// Unknown keys, ignored (xl: "unknown channel parameter '...', ignoring").
    pub ignored: Vec<String>,
}

/// What is wrong with a channel spec.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ChannelSpecError {
    #[error("failed to parse channel configuration: `{0}' is not key=value")]
    NotPair(String),
    #[error("unknown channel connection '{0}' (pty or socket)")]
    Connection(String),
    #[error("channel has unknown 'connection' (connection=pty)")]
    NoConnection,
    #[error("channel connection 'socket' requires path=..")]
    NoPath,
    #[error("channel has no name (name=...)")]
    NoName,
}

/// Parses one CHANNEL_SPEC.
pub fn parse_channel_spec(spec: &str) -> Result<ChannelSpec, ChannelSpecError> {
    let mut name = None;
    let mut connection = None;
    let mut path = None;
    let mut backend = None;
    let mut ignored = Vec::new();
    for pair in spec.split(',') {
        let Some((k, v)) = pair.split_once('=') else {
            return Err(ChannelSpecError::NotPair(pair.to_string()));
        };
        let (k, v) = (k.trim(), v.trim().to_string());
        match k {
            "name" => name = Some(v),
            "backend" => backend = Some(v),
            "path" => path = Some(v),
            "connection" => {
                connection = Some(match v.as_str() {
                    "pty" => "pty",
                    "socket" => "socket",
                    _ => return Err(ChannelSpecError::Connection(v)),
                })
            }
            _ => ignored.push(k.to_string()),
        }
    }
    let connection = match connection {
        None => return Err(ChannelSpecError::NoConnection),
        Some("pty") => Connection::Pty,
        Some(_) => Connection::Socket {
            path: path.ok_or(ChannelSpecError::NoPath)?,
        },
    };
    // libxl__init_console_from_channel refuses a channel without a name.
    let name = name
        .filter(|n| !n.is_empty())
        .ok_or(ChannelSpecError::NoName)?;
    Ok(ChannelSpec {
        name,
        connection,
        backend,
        ignored,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pty_channels_parse_like_xl() {
        let c = parse_channel_spec(" name = org.rxen.agent ,connection=pty").unwrap();
        assert_eq!(c.name, "org.rxen.agent");
        assert_eq!(c.connection, Connection::Pty);
        assert_eq!(c.backend, None);
        assert!(c.ignored.is_empty());
        let c = parse_channel_spec("connection=pty,name=a,backend=0,colour=blue").unwrap();
        assert_eq!(c.backend.as_deref(), Some("0"));
        assert_eq!(c.ignored, ["colour"]);
    }

    #[test]
    fn socket_channels_need_a_path() {
        let c = parse_channel_spec("name=a,connection=socket,path=/run/a.sock").unwrap();
        assert_eq!(
            c.connection,
            Connection::Socket {
                path: "/run/a.sock".into()
            }
        );
        assert_eq!(
            parse_channel_spec("name=a,connection=socket"),
            Err(ChannelSpecError::NoPath)
        );
    }

    #[test]
    fn bad_channels_are_refused() {
        assert_eq!(
            parse_channel_spec("name=a"),
            Err(ChannelSpecError::NoConnection)
        );
        assert_eq!(
            parse_channel_spec("connection=pty"),
            Err(ChannelSpecError::NoName)
        );
        assert_eq!(
            parse_channel_spec("name=a,connection=tcp"),
            Err(ChannelSpecError::Connection("tcp".into()))
        );
        assert_eq!(
            parse_channel_spec("name=a,connection"),
            Err(ChannelSpecError::NotPair("connection".into()))
        );
    }
}
