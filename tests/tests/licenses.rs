//! Every dependency in Cargo.lock carries a license that `deny.toml` allows,
//! checked here so that the allow-list cannot drift from the lock file even
//! where cargo-deny is not installed. A dependency's SPDX expression passes
//! when one of its `OR` alternatives uses allowed licenses only.

use std::process::Command;

/// The `allow = [...]` list of deny.toml's `[licenses]` table.
fn allowed() -> Vec<String> {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../deny.toml"))
        .expect("deny.toml at the workspace root");
    let start = text
        .find("\nallow = [")
        .expect("deny.toml has an allow list");
    let rest = &text[start..];
    let end = rest.find(']').expect("the allow list is closed");
    rest[..end]
        .lines()
        .filter_map(|l| l.trim().strip_prefix('"')?.split('"').next())
        .map(str::to_owned)
        .collect()
}

/// Whether `expr` (SPDX, with the old `A/B` for `A OR B`) is satisfied by
/// `allowed`: some alternative of the top-level `OR` whose `AND`ed terms
/// are all allowed.
fn satisfied(expr: &str, allowed: &[String]) -> bool {
    let expr = expr.trim();
    if let Some(inner) = expr.strip_prefix('(').and_then(|e| e.strip_suffix(')')) {
        if balanced(inner) {
            return satisfied(inner, allowed);
        }
    }
    if let Some(parts) = split_top(expr, " OR ").or_else(|| split_top(expr, "/")) {
        return parts.iter().any(|p| satisfied(p, allowed));
    }
    if let Some(parts) = split_top(expr, " AND ") {
        return parts.iter().all(|p| satisfied(p, allowed));
    }
    allowed.iter().any(|a| a == expr)
}

fn balanced(s: &str) -> bool {
    let mut depth = 0i32;
    for c in s.chars() {
        depth += match c {
            '(' => 1,
            ')' => -1,
            _ => 0,
        };
        if depth < 0 {
            return false;
        }
    }
    depth == 0
}

/// `s` split on `sep` outside parentheses, or `None` when `sep` occurs
/// only inside them.
fn split_top<'a>(s: &'a str, sep: &str) -> Option<Vec<&'a str>> {
    let (mut depth, mut start, mut parts) = (0i32, 0, Vec::new());
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'(' => depth += 1,
            b')' => depth -= 1,
            _ if depth == 0 && s[i..].starts_with(sep) => {
                parts.push(&s[start..i]);
                i += sep.len();
                start = i;
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    (!parts.is_empty()).then(|| {
        parts.push(&s[start..]);
        parts
    })
}

#[test]
fn the_evaluator_reads_spdx_as_cargo_deny_does() {
    let allow: Vec<String> = ["MIT", "Apache-2.0", "Unicode-3.0"]
        .map(String::from)
        .into();
    assert!(satisfied("MIT OR Apache-2.0", &allow));
    assert!(satisfied("MIT/Apache-2.0", &allow));
    assert!(satisfied("(MIT OR Apache-2.0) AND Unicode-3.0", &allow));
    assert!(!satisfied("(MIT OR Apache-2.0) AND GPL-2.0", &allow));
    assert!(!satisfied("GPL-3.0", &allow));
    assert!(satisfied("GPL-3.0 OR MIT", &allow));
    assert!(!satisfied("LGPL-2.1-or-later", &allow));
}

#[test]
fn every_dependency_has_an_allowed_license() {
    let allow = allowed();
    assert!(
        allow.iter().any(|a| a == "MIT"),
        "deny.toml's allow list: {allow:?}"
    );
    let out = Command::new(env!("CARGO"))
        .args(["metadata", "--format-version", "1", "--locked"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo metadata runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).expect("metadata is JSON");
    let members: Vec<&str> = meta["workspace_members"]
        .as_array()
        .expect("workspace_members")
        .iter()
        .filter_map(|m| m.as_str())
        .collect();
    let mut bad = Vec::new();
    let mut checked = 0;
    for pkg in meta["packages"].as_array().expect("packages") {
        let id = pkg["id"].as_str().unwrap_or_default();
        let name = pkg["name"].as_str().unwrap_or_default();
        let license = pkg["license"].as_str();
        if members.contains(&id) {
            assert_eq!(license, Some("MIT OR Apache-2.0"), "workspace crate {name}");
            continue;
        }
        checked += 1;
        match license {
            Some(l) if satisfied(l, &allow) => {}
            other => bad.push(format!("{name}: {other:?}")),
        }
    }
    assert!(checked > 20, "only {checked} dependencies seen");
    assert!(
        bad.is_empty(),
        "licenses deny.toml does not allow: {bad:#?}"
    );
}
