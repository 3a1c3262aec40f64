//! Cutting a host pattern into terms, as Ansible does.
//!
//! With a comma anywhere, the pattern is cut at commas only, so a term may
//! hold a colon. Without one, a pattern that reads as a single address (an
//! IPv6 address, `host:port`, a name with ranges) is one term; otherwise
//! terms end at colons and at whitespace, and a bracketed part (`web[1:3]`)
//! stays whole. Empty terms (`a,`, `a,,b`) are dropped.
//!
//! Where Ansible would quietly cut a stray bracket out of a colon pattern,
//! herd refuses the pattern instead.

use std::sync::LazyLock;

use regex::Regex;

use super::{error, Op, PatternError, Term};

/// The terms of `pattern`, in the order written.
pub(super) fn split(pattern: &str) -> Result<Vec<Term>, PatternError> {
    let pieces = if pattern.contains(',') {
        by_commas(pattern)
    } else if is_address(pattern) {
        vec![(0, pattern)]
    } else {
        by_colons(pattern)?
    };
    if pieces.is_empty() {
        return Err(error(0, "the host pattern is empty"));
    }
    pieces
        .into_iter()
        .map(|(offset, text)| term(offset, text))
        .collect()
}

/// Python's whitespace (`str.strip`, `\s`): Unicode's, and the four
/// separator controls.
pub(super) fn is_space(c: char) -> bool {
    c.is_whitespace() || ('\x1c'..='\x1f').contains(&c)
}

/// `text` without the whitespace around it, and the offset where it starts.
pub(super) fn trimmed(offset: usize, text: &str) -> (usize, &str) {
    let start = text.trim_start_matches(is_space);
    (
        offset + text.len() - start.len(),
        start.trim_end_matches(is_space),
    )
}

fn by_commas(pattern: &str) -> Vec<(usize, &str)> {
    let mut pieces = Vec::new();
    let mut offset = 0;
    for piece in pattern.split(',') {
        let (at, text) = trimmed(offset, piece);
        if !text.is_empty() {
            pieces.push((at, text));
        }
        offset += piece.len() + 1;
    }
    pieces
}

/// Runs of characters other than whitespace, `:`, `[` and `]`, each `[`
/// taking everything up to its `]` along.
fn by_colons(pattern: &str) -> Result<Vec<(usize, &str)>, PatternError> {
    let mut pieces = Vec::new();
    let mut start = None;
    let mut i = 0;
    while let Some(c) = pattern[i..].chars().next() {
        match c {
            '[' => match pattern[i + 1..].find(']') {
                Some(close) => {
                    start.get_or_insert(i);
                    i += close + 2;
                    continue;
                }
                None => return Err(error(i, "unclosed `[` in host pattern")),
            },
            ']' => return Err(error(i, "`]` without its `[` in host pattern")),
            c if c == ':' || is_space(c) => {
                if let Some(start) = start.take() {
                    pieces.push((start, &pattern[start..i]));
                }
            }
            _ => {
                start.get_or_insert(i);
            }
        }
        i += c.len_utf8();
    }
    if let Some(start) = start {
        pieces.push((start, &pattern[start..]));
    }
    Ok(pieces)
}

/// One piece: its operator, then the name or glob, which must follow it
/// directly.
pub(super) fn term(offset: usize, piece: &str) -> Result<Term, PatternError> {
    let (op, sign) = match piece.chars().next() {
        Some('&') => (Op::Intersection, "&"),
        Some('!') => (Op::Exclusion, "!"),
        _ => (Op::Union, ""),
    };
    let text = &piece[sign.len()..];
    let at = offset + sign.len();
    if text.is_empty() {
        return Err(error(
            at,
            format!("`{sign}` must be followed by a host or group"),
        ));
    }
    if text.starts_with(is_space) {
        return Err(error(
            at,
            format!("`{sign}` must be followed by a host or group, with no space between"),
        ));
    }
    Ok(Term {
        op,
        text: text.to_string(),
        offset: at,
        file: None,
    })
}

const NUMERIC_RANGE: &str = r"\[[0-9]+:[0-9]+(?::[0-9]+)?\]";
const HEX_RANGE: &str = r"\[[0-9a-f]+:[0-9a-f]+(?::[0-9]+)?\]";
const ALNUM_RANGE: &str = r"\[(?:[a-z]:[a-z]|[0-9]+:[0-9]+)(?::[0-9]+)?\]";

static BRACKETED_HOST_PORT: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^\[(.+)\]:([0-9]+)$").expect("valid regex"));
static HOST_PORT: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^((?:[^:\[\]]|\[[^\]]*\])*):([0-9]+)$").expect("valid regex"));
static IPV4: LazyLock<Regex> = LazyLock::new(|| {
    let part = format!("(?:[01]?[0-9]{{1,2}}|2[0-4][0-9]|25[0-5]|{NUMERIC_RANGE})");
    Regex::new(&format!(r"(?i)^(?:{part}\.){{3}}{part}$")).expect("valid regex")
});
static IPV6: LazyLock<Regex> = LazyLock::new(|| {
    let c = format!("(?:[0-9a-f]{{1,4}}|{HEX_RANGE})");
    let v4 = format!(r"(?:{c}\.){{3}}{c}");
    let forms = [
        format!("(?:{c}:){{7}}{c}"),
        format!("(?:{c}:){{1,6}}:"),
        format!("(?:{c}:)(?::{c}){{1,6}}"),
        format!("(?:{c}:){{2}}(?::{c}){{1,5}}"),
        format!("(?:{c}:){{3}}(?::{c}){{1,4}}"),
        format!("(?:{c}:){{4}}(?::{c}){{1,3}}"),
        format!("(?:{c}:){{5}}(?::{c}){{1,2}}"),
        format!("(?:{c}:){{6}}(?::{c})"),
        format!(":(?::{c}){{1,6}}"),
        format!("{c}?::"),
        format!("(?:0:){{6}}{v4}"),
        format!("::(?:ffff:)?{v4}"),
        format!("(?:0:){{5}}ffff:{v4}"),
    ];
    Regex::new(&format!("(?i)^(?:{})$", forms.join("|"))).expect("valid regex")
});
static HOSTNAME: LazyLock<Regex> = LazyLock::new(|| {
    // A label of word characters, hyphens and ranges that does not end in
    // `_` or `-`.
    let last = format!(r"(?:[^\W_]|{ALNUM_RANGE})");
    let label = format!(r"(?:{last}|(?:\w|{ALNUM_RANGE})(?:[\w-]|{ALNUM_RANGE})*{last})");
    Regex::new(&format!(r"(?i)^{label}(?:\.{label})*$")).expect("valid regex")
});

/// Whether Ansible reads the whole of `pattern` as one host address: an
/// IPv4 or IPv6 address or a host name, ranges allowed, perhaps with a port.
fn is_address(pattern: &str) -> bool {
    let mut address = pattern;
    for shape in [&BRACKETED_HOST_PORT, &HOST_PORT] {
        if let Some(host) = shape.captures(address).and_then(|c| c.get(1)) {
            address = host.as_str();
        }
    }
    [&IPV4, &IPV6, &HOSTNAME]
        .iter()
        .any(|shape| shape.is_match(address))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(pattern: &str) -> Vec<(char, String, usize)> {
        split(pattern)
            .unwrap()
            .into_iter()
            .map(|t| {
                let op = match t.op {
                    Op::Union => '|',
                    Op::Intersection => '&',
                    Op::Exclusion => '!',
                };
                (op, t.text, t.offset)
            })
            .collect()
    }

    fn names(pattern: &str) -> Vec<String> {
        texts(pattern)
            .into_iter()
            .map(|(_, text, _)| text)
            .collect()
    }

    #[test]
    fn a_comma_anywhere_means_commas_only() {
        assert_eq!(
            names("web,datacenter:!leaf01"),
            ["web", "datacenter:!leaf01"]
        );
        assert_eq!(
            texts(" db , &web[1:2] ,!x"),
            [
                ('|', "db".into(), 1),
                ('&', "web[1:2]".into(), 7),
                ('!', "x".into(), 18)
            ]
        );
        assert_eq!(names("a b,c"), ["a b", "c"]);
    }

    #[test]
    fn stray_commas_are_dropped() {
        assert_eq!(names("a,"), ["a"]);
        assert_eq!(names(",a,,b, ,"), ["a", "b"]);
        assert_eq!(texts("a,,b")[1].2, 3);
    }

    #[test]
    fn without_commas_colons_and_whitespace_separate() {
        assert_eq!(names("web:db"), ["web", "db"]);
        assert_eq!(names("app workers"), ["app", "workers"]);
        assert_eq!(
            names(" :web::&db \t!x:"),
            ["web", "&db", "!x"].map(|s| { s.trim_start_matches(['&', '!']).to_string() })
        );
        assert_eq!(names("web[1:3]:&db[0]"), ["web[1:3]", "db[0]"]);
        assert_eq!(names("web[a b]:x"), ["web[a b]", "x"]);
        assert_eq!(texts("web:!canary")[1], ('!', "canary".into(), 5));
    }

    #[test]
    fn addresses_stay_whole() {
        assert_eq!(names("::1"), ["::1"]);
        assert_eq!(names("2001:db8::1"), ["2001:db8::1"]);
        assert_eq!(names("fe80::[1:2]"), ["fe80::[1:2]"]);
        assert_eq!(names("web1.example.com:22"), ["web1.example.com:22"]);
        assert_eq!(names("[::1]:22"), ["[::1]:22"]);
        assert_eq!(names("10.0.0.[1:3]:22"), ["10.0.0.[1:3]:22"]);
        assert_eq!(names("web[a:c]"), ["web[a:c]"]);
        // Not addresses: cut at colons.
        assert_eq!(names("web:db1"), ["web", "db1"]);
        assert_eq!(names("web-:22"), ["web-", "22"]);
        assert_eq!(names("web_:22"), ["web_", "22"]);
        assert_eq!(names("a*:22"), ["a*", "22"]);
        assert!(!is_address("web:&db"));
        assert!(is_address("w"));
        assert!(!is_address("_"));
        assert!(is_address("a_b-c.d"));
        assert!(!is_address("a.-b"));
    }

    #[test]
    fn malformed_pieces_are_errors_at_their_offset() {
        let at = |pattern: &str| {
            let e = split(pattern).unwrap_err();
            (e.offset, e.message)
        };
        assert_eq!(at(""), (0, "the host pattern is empty".into()));
        assert_eq!(at(" , ,"), (0, "the host pattern is empty".into()));
        assert_eq!(at(" : "), (0, "the host pattern is empty".into()));
        assert_eq!(names("::"), ["::"]);
        assert_eq!(
            at("web:&"),
            (5, "`&` must be followed by a host or group".into())
        );
        assert_eq!(
            at("web:! canary"),
            (5, "`!` must be followed by a host or group".into())
        );
        assert_eq!(
            at("web, ! canary"),
            (
                6,
                "`!` must be followed by a host or group, with no space between".into()
            )
        );
        assert_eq!(at("db:web[1:2"), (6, "unclosed `[` in host pattern".into()));
        assert_eq!(
            at("db:web]"),
            (6, "`]` without its `[` in host pattern".into())
        );
    }
}
