//! Reading the Jinja in a template's text: where tags and expressions
//! end, `{% raw %}` blocks, and the `| raw` filter.

/// Where `close` ends a Jinja tag or expression opened before `from`,
/// skipping string literals (which may contain `}}`).
pub(super) fn jinja_end(bytes: &[u8], from: usize, close: &[u8]) -> usize {
    let mut i = from;
    let mut quote: Option<u8> = None;
    while i < bytes.len() {
        let c = bytes[i];
        match quote {
            Some(_) if c == b'\\' => i += 1,
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == b'\'' || c == b'"' => quote = Some(c),
            None if bytes[i..].starts_with(close) => return i,
            None => {}
        }
        i += 1;
    }
    bytes.len()
}

pub(super) fn find(bytes: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    (from..bytes.len()).find(|&i| bytes[i..].starts_with(needle))
}

/// The text between `from` and `to`, clipped to `source`.
pub(super) fn inner(source: &str, from: usize, to: usize) -> &str {
    source
        .get(from.min(source.len())..to.min(source.len()))
        .unwrap_or("")
}

/// A tag's first word, without whitespace control (`{%- raw -%}`).
pub(super) fn first_word(tag: &str) -> &str {
    tag.trim_matches(|c: char| c == '-' || c == '+' || c.is_whitespace())
        .split_whitespace()
        .next()
        .unwrap_or("")
}

/// The end of the `{% raw %}` block whose text starts at `from`: (where its
/// `{% endraw %}` starts, where it ends).
pub(super) fn find_endraw(source: &str, from: usize) -> (usize, usize) {
    let bytes = source.as_bytes();
    let mut at = from;
    while let Some(open) = find(bytes, at, b"{%") {
        let end = jinja_end(bytes, open + 2, b"%}");
        if first_word(inner(source, open + 2, end)) == "endraw" {
            return (open, (end + 2).min(bytes.len()));
        }
        at = open + 2;
    }
    (bytes.len(), bytes.len())
}

/// Whether an expression's last filter is `raw`: the user's way to insert a
/// value unquoted, on purpose.
pub(super) fn is_raw(expression: &str) -> bool {
    let expression = expression.trim_matches(|c: char| c == '-' || c == '+' || c.is_whitespace());
    let mut depth = 0usize;
    let mut quote: Option<char> = None;
    let mut last_bar = None;
    let mut escaped = false;
    for (index, c) in expression.char_indices() {
        if let Some(q) = quote {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == q {
                quote = None;
            }
            continue;
        }
        match c {
            '\'' | '"' => quote = Some(c),
            '(' | '[' | '{' => depth += 1,
            ')' | ']' | '}' => depth = depth.saturating_sub(1),
            '|' if depth == 0 => last_bar = Some(index),
            _ => {}
        }
    }
    last_bar.is_some_and(|bar| expression[bar + 1..].trim() == "raw")
}
