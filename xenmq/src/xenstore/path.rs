//! Node paths: what a valid name is, and how relative names resolve.
//!
//! Rules of C xenstored 4.17: an absolute path starts with `/`, does not end
//! with `/` (except `/` itself), has no `//`, uses only `[A-Za-z0-9-/_@]`,
//! and is at most [`REL_PATH_MAX`](super::wire::REL_PATH_MAX) bytes long, not
//! counting a leading `/local/domain/<id>/`. A relative path is relative to
//! the connection's home, `/local/domain/<domid>`. Names starting with `@`
//! are special watch names, never nodes.

use alloc::format;
use alloc::string::String;

/// The event name fired when a domain is introduced.
pub const INTRODUCE_DOMAIN: &str = "@introduceDomain";
/// The event name fired when a domain is released.
pub const RELEASE_DOMAIN: &str = "@releaseDomain";

/// A domain's home directory, `/local/domain/<domid>`.
pub fn home(domid: u32) -> String {
    format!("/local/domain/{domid}")
}

/// Whether every byte is allowed in a node name.
pub fn valid_chars(path: &[u8]) -> bool {
    path.iter()
        .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'/' | b'_' | b'@'))
}

/// Resolves `path` for a connection of `domid`: absolute and special names
/// are returned as they are, others are joined to the domain's home.
/// Invalid UTF-8 cannot be a valid name: `None`.
pub fn canonicalize(domid: u32, path: &[u8]) -> Option<String> {
    let s = core::str::from_utf8(path).ok()?;
    if s.starts_with('/') || s.starts_with('@') {
        Some(String::from(s))
    } else {
        Some(format!("/local/domain/{domid}/{s}"))
    }
}

/// The length of a leading `/local/domain/<1-5 digits>/`, or 0.
fn local_prefix_len(path: &str) -> usize {
    let Some(rest) = path.strip_prefix("/local/domain/") else {
        return 0;
    };
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 || digits > 5 || rest.as_bytes().get(digits) != Some(&b'/') {
        return 0;
    }
    "/local/domain/"
        .len()
        .saturating_add(digits)
        .saturating_add(1)
}

/// Whether `path` (absolute, already canonicalized) names a node.
pub fn is_valid(path: &str) -> bool {
    if !path.starts_with('/') {
        return false;
    }
    if path.ends_with('/') && path != "/" {
        return false;
    }
    if path.contains("//") {
        return false;
    }
    if path.len() > local_prefix_len(path).saturating_add(super::wire::REL_PATH_MAX) {
        return false;
    }
    valid_chars(path.as_bytes())
}

/// Whether `path` is a special (`@`) name acceptable for a watch.
pub fn is_valid_special(path: &str) -> bool {
    path.starts_with('@') && path.len() <= super::wire::REL_PATH_MAX && valid_chars(path.as_bytes())
}

/// The parent of a valid absolute path (`/` is its own parent).
pub fn parent(path: &str) -> &str {
    match path.rfind('/') {
        Some(0) | None => "/",
        Some(i) => path.get(..i).unwrap_or("/"),
    }
}

/// The last component of a valid absolute path (`""` for `/`).
pub fn basename(path: &str) -> &str {
    match path.rfind('/') {
        Some(i) => path.get(i.saturating_add(1)..).unwrap_or(""),
        None => path,
    }
}

/// Whether `path` is `ancestor` or lies below it (everything lies below `/`).
pub fn is_at_or_below(path: &str, ancestor: &str) -> bool {
    if ancestor == "/" {
        return true;
    }
    match path.strip_prefix(ancestor) {
        Some("") => true,
        Some(rest) => rest.starts_with('/'),
        None => false,
    }
}

/// Joins a child name to a directory path.
pub fn join(dir: &str, child: &str) -> String {
    if dir == "/" {
        format!("/{child}")
    } else {
        format!("{dir}/{child}")
    }
}

/// The name a watch event reports for `path` to a watch registered with a
/// relative name by `domid`: `path` without the home prefix, or `path`.
pub fn relative_to_home(path: &str, domid: u32) -> &str {
    let home = home(domid);
    match path
        .strip_prefix(home.as_str())
        .and_then(|r| r.strip_prefix('/'))
    {
        Some(rel) => rel,
        None => path,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validity() {
        assert!(is_valid("/"));
        assert!(is_valid("/a/b-c_d@e/0"));
        assert!(!is_valid("a"));
        assert!(!is_valid("/a/"));
        assert!(!is_valid("/a//b"));
        assert!(!is_valid("/a b"));
        assert!(!is_valid("/a.b"));
        assert!(!is_valid(""));
        let long = alloc::format!("/{}", "x".repeat(2047));
        assert!(is_valid(&long));
        let long = alloc::format!("/{}", "x".repeat(2048));
        assert!(!is_valid(&long));
        let homed = alloc::format!("/local/domain/12345/{}", "x".repeat(2048));
        assert!(is_valid(&homed));
        let homed = alloc::format!("/local/domain/123456/{}", "x".repeat(2048));
        assert!(!is_valid(&homed));
    }

    #[test]
    fn resolution() {
        assert_eq!(
            canonicalize(3, b"x/y").as_deref(),
            Some("/local/domain/3/x/y")
        );
        assert_eq!(canonicalize(3, b"/x").as_deref(), Some("/x"));
        assert_eq!(canonicalize(3, b"@a").as_deref(), Some("@a"));
        assert_eq!(canonicalize(3, b"\xff"), None);
        assert_eq!(parent("/a/b"), "/a");
        assert_eq!(parent("/a"), "/");
        assert_eq!(basename("/a/b"), "b");
        assert!(is_at_or_below("/a/b", "/a"));
        assert!(is_at_or_below("/a", "/a"));
        assert!(!is_at_or_below("/ab", "/a"));
        assert!(is_at_or_below("/ab", "/"));
        assert_eq!(relative_to_home("/local/domain/3/x", 3), "x");
        assert_eq!(relative_to_home("/local/domain/3", 3), "/local/domain/3");
        assert_eq!(relative_to_home("/other", 3), "/other");
    }
}
