//! Node path rules of C xenstored 4.17 (`is_valid_nodename`, `canonicalize`,
//! `get_parent`).

/// Prefix of every domain's home directory.
pub const LOCAL_DOMAIN: &str = "/local/domain/";
/// Special watch path fired when a domain is introduced.
pub const INTRODUCE_DOMAIN: &str = "@introduceDomain";
/// Special watch path fired when a domain is released or dies.
pub const RELEASE_DOMAIN: &str = "@releaseDomain";
/// Maximum digits C's `sscanf("/local/domain/%5u/")` takes for the domid.
const DOMID_SCAN_WIDTH: usize = 5;

/// The home directory of a domain: `/local/domain/<domid>`.
pub fn domain_path(domid: u32) -> String {
    format!("{LOCAL_DOMAIN}{domid}")
}

fn valid_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'-' | b'/' | b'_' | b'@')
}

/// Length of a `/local/domain/<n>/` prefix as C's
/// `sscanf(node, "/local/domain/%5u/%n")` measures it, or 0.
fn local_prefix_len(node: &[u8]) -> usize {
    let Some(rest) = node.strip_prefix(LOCAL_DOMAIN.as_bytes()) else {
        return 0;
    };
    let mut i = 0;
    if rest.first().is_some_and(|c| *c == b'-' || *c == b'+') {
        i = 1;
    }
    let digits_start = i;
    while i < rest.len() && i < DOMID_SCAN_WIDTH && rest[i].is_ascii_digit() {
        i += 1;
    }
    if i == digits_start || rest.get(i) != Some(&b'/') {
        return 0;
    }
    LOCAL_DOMAIN.len() + i + 1
}

/// C `is_valid_nodename`: absolute, no trailing `/` (except the root), no `//`,
/// at most `max_rel_len` bytes beyond a `/local/domain/<n>/` prefix, and only
/// `[A-Za-z0-9-/_@]`.
pub fn is_valid_nodename(node: &[u8], max_rel_len: usize) -> bool {
    if node.first() != Some(&b'/') {
        return false;
    }
    if node.len() > 1 && node.ends_with(b"/") {
        return false;
    }
    if node.windows(2).any(|w| w == b"//") {
        return false;
    }
    if node.len() > local_prefix_len(node) + max_rel_len {
        return false;
    }
    node.iter().all(|c| valid_char(*c))
}

/// C `canonicalize`: a name not starting with `/` or `@` is relative to `home`.
pub fn canonicalize(name: &[u8], home: &str) -> Vec<u8> {
    if name.first().is_some_and(|c| *c == b'/' || *c == b'@') {
        return name.to_vec();
    }
    let mut out = Vec::with_capacity(home.len() + 1 + name.len());
    out.extend_from_slice(home.as_bytes());
    out.push(b'/');
    out.extend_from_slice(name);
    out
}

/// C `get_parent`: everything before the last `/` (not counting the first
/// character), or `/`.
pub fn parent(name: &str) -> &str {
    match name.get(1..).and_then(|r| r.rfind('/')) {
        Some(pos) => &name[..pos + 1],
        None => "/",
    }
}

/// The last component of a non-root path.
pub fn basename(name: &str) -> &str {
    match name.rfind('/') {
        Some(pos) => &name[pos + 1..],
        None => name,
    }
}

/// `parent/child`, handling the root.
pub fn child_path(parent: &str, child: &str) -> String {
    if parent == "/" {
        format!("/{child}")
    } else {
        format!("{parent}/{child}")
    }
}

/// C `is_child` of the watch code: `child` is `parent` or below it; everything is
/// below `/`.
pub fn is_child(child: &str, parent: &str) -> bool {
    if parent == "/" {
        return true;
    }
    match child.strip_prefix(parent) {
        Some(rest) => rest.is_empty() || rest.starts_with('/'),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::XENSTORE_REL_PATH_MAX;

    fn valid(s: &str) -> bool {
        is_valid_nodename(s.as_bytes(), XENSTORE_REL_PATH_MAX)
    }

    #[test]
    fn nodename_rules() {
        assert!(valid("/"));
        assert!(valid("/local/domain/0/a-b_c@d"));
        assert!(!valid(""));
        assert!(!valid("local"));
        assert!(!valid("/a/"));
        assert!(!valid("/a//b"));
        assert!(!valid("/a b"));
        assert!(!valid("/a.b"));
        assert!(!valid("@introduceDomain"));
        let long = format!("/{}", "a".repeat(XENSTORE_REL_PATH_MAX));
        assert!(!valid(&long));
        assert!(valid(&long[..XENSTORE_REL_PATH_MAX]));
        // Beyond /local/domain/<n>/ the relative limit applies.
        let rel = format!("/local/domain/12/{}", "a".repeat(XENSTORE_REL_PATH_MAX));
        assert!(valid(&rel));
        let rel2 = format!("/local/domain/12/{}", "a".repeat(XENSTORE_REL_PATH_MAX + 1));
        assert!(!valid(&rel2));
        // Six digits are not a domid prefix for C's %5u.
        let rel3 = format!("/local/domain/123456/{}", "a".repeat(XENSTORE_REL_PATH_MAX));
        assert!(!valid(&rel3));
    }

    #[test]
    fn path_helpers() {
        assert_eq!(
            canonicalize(b"device", "/local/domain/3"),
            b"/local/domain/3/device"
        );
        assert_eq!(canonicalize(b"/abs", "/local/domain/3"), b"/abs");
        assert_eq!(canonicalize(b"@releaseDomain", "/x"), b"@releaseDomain");
        assert_eq!(parent("/a/b/c"), "/a/b");
        assert_eq!(parent("/a"), "/");
        assert_eq!(parent("/"), "/");
        assert_eq!(basename("/a/b"), "b");
        assert_eq!(child_path("/", "a"), "/a");
        assert_eq!(child_path("/a", "b"), "/a/b");
        assert!(is_child("/a/b", "/a"));
        assert!(is_child("/a", "/a"));
        assert!(!is_child("/ab", "/a"));
        assert!(is_child("/anything", "/"));
    }
}
