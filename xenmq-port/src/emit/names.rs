//! Rust names for C names.

const KEYWORDS: &[&str] = &[
    "as", "break", "const", "continue", "crate", "else", "enum", "extern", "false", "fn", "for",
    "if", "impl", "in", "let", "loop", "match", "mod", "move", "mut", "pub", "ref", "return",
    "self", "Self", "static", "struct", "super", "trait", "true", "type", "unsafe", "use", "where",
    "while", "async", "await", "dyn", "abstract", "become", "box", "do", "final", "macro",
    "override", "priv", "typeof", "unsized", "virtual", "yield", "try", "gen",
];

/// A C name as a Rust identifier (raw if it is a keyword).
pub fn ident(name: &str) -> String {
    match name {
        "self" | "Self" | "super" | "crate" => format!("{name}_"),
        _ if KEYWORDS.contains(&name) => format!("r#{name}"),
        _ => name.to_string(),
    }
}

/// `blkif_request` -> `BlkifRequest`, `USB_VER_USB11` -> `UsbVerUsb11`.
pub fn camel(name: &str) -> String {
    let mut out = String::new();
    for part in name.split('_').filter(|p| !p.is_empty()) {
        let mut chars = part.chars();
        if let Some(c) = chars.next() {
            out.push(c.to_ascii_uppercase());
            out.push_str(&chars.as_str().to_ascii_lowercase());
        }
    }
    if out.is_empty() || out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, 'T');
    }
    out
}

/// The length of the prefix, up to and including an `_`, that all names share.
pub fn common_prefix(names: &[String]) -> usize {
    let Some(first) = names.first() else { return 0 };
    let mut len = first.len();
    for n in &names[1..] {
        len = len.min(
            first
                .bytes()
                .zip(n.bytes())
                .take_while(|(a, b)| a == b)
                .count(),
        );
    }
    if names.len() < 2 {
        return 0;
    }
    first[..len].rfind('_').map_or(0, |i| i + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(camel("blkif_request"), "BlkifRequest");
        assert_eq!(camel("_xen_pvcalls_socket"), "XenPvcallsSocket");
        assert_eq!(camel("USB_VER_USB11"), "UsbVerUsb11");
        assert_eq!(ident("type"), "r#type");
        assert_eq!(ident("self"), "self_");
        let v: Vec<String> = ["USB_VER_UNKNOWN", "USB_VER_USB11"]
            .map(String::from)
            .into();
        assert_eq!(common_prefix(&v), 8);
    }
}
