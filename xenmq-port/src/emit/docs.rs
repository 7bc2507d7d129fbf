//! The header's comments as Rust docs.

use crate::ast::Doc;

/// A comment's text without the `*` column and banner lines.
pub fn clean(text: &str) -> Vec<String> {
    let mut lines: Vec<String> = text
        .lines()
        .map(|l| {
            let t = l.trim_end();
            let s = t.trim_start();
            let s = match s.strip_prefix('*') {
                Some(rest) if !rest.starts_with('*') && !rest.starts_with('/') => {
                    rest.strip_prefix(' ').unwrap_or(rest)
                }
                _ => s,
            };
            let banner = s.len() >= 3 && s.chars().all(|c| c == '*');
            if banner {
                String::new()
            } else {
                s.replace("```", "'''")
            }
        })
        .collect();
    while lines.first().is_some_and(String::is_empty) {
        lines.remove(0);
    }
    while lines.last().is_some_and(String::is_empty) {
        lines.pop();
    }
    lines
}

/// Doc lines (without the `///`) for comments: one line as text, more in
/// a `text` block so that their layout (tables, diagrams) survives.
pub fn doc_lines(docs: &[Doc]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for d in docs {
        let lines = clean(&d.text);
        if lines.is_empty() {
            continue;
        }
        if !out.is_empty() {
            out.push(String::new());
        }
        if lines.len() == 1 {
            out.push(lines[0].trim().to_string());
        } else {
            out.push("```text".into());
            out.extend(lines);
            out.push("```".into());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comments_lose_their_star_column_and_banners() {
        let c = clean("*****\n * blkif.h\n *\n * Unified block-device\n ");
        assert_eq!(c, ["blkif.h", "", "Unified block-device"]);
        let d = doc_lines(&[Doc {
            line: 1,
            text: " only this ".into(),
        }]);
        assert_eq!(d, ["only this"]);
    }
}
