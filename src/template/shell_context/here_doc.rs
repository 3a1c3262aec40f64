//! Here-documents: their operators, and the bodies that follow them.

use super::{is_raw, Context, Place, Unprotected};

pub(super) struct HereDoc {
    pub(super) delimiter: String,
    pub(super) strip_tabs: bool,
    /// Whether any part of the delimiter was quoted: then the body is taken
    /// as it is, and a backslash does not join lines.
    pub(super) quoted: bool,
    /// How deep the lexer was at the operator: the body starts at a
    /// newline at that depth.
    pub(super) depth: usize,
}

/// Whether a newline, here, starts the bodies of the pending here-documents.
pub(super) fn body_starts(stack: &[Context], pending: &[HereDoc]) -> bool {
    pending.first().is_some_and(|doc| doc.depth == stack.len())
        && matches!(stack.last(), Some(Context::Words(_)))
}

/// After `<<`: reads `-` and the delimiter word (quotes removed), and
/// remembers the here-document whose body starts at the next newline.
pub(super) fn here_document_operator(
    bytes: &[u8],
    mut i: usize,
    depth: usize,
    pending: &mut Vec<HereDoc>,
) -> usize {
    let strip_tabs = bytes.get(i) == Some(&b'-');
    if strip_tabs {
        i += 1;
    }
    while matches!(bytes.get(i), Some(b' ' | b'\t')) {
        i += 1;
    }
    let mut delimiter = Vec::new();
    let mut quote: Option<u8> = None;
    let mut quoted = false;
    while let Some(&c) = bytes.get(i) {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => delimiter.push(c),
            (None, b'\'' | b'"') => {
                quote = Some(c);
                quoted = true;
            }
            (None, b'\\') if bytes.get(i + 1) == Some(&b'\n') => i += 1,
            (None, b'\\') => {
                quoted = true;
                if let Some(&escaped) = bytes.get(i + 1) {
                    delimiter.push(escaped);
                }
                i += 1;
            }
            (None, b' ' | b'\t' | b'\n' | b';' | b'&' | b'|' | b'<' | b'>' | b'(' | b')') => break,
            (None, c) => delimiter.push(c),
        }
        i += 1;
    }
    pending.push(HereDoc {
        delimiter: String::from_utf8_lossy(&delimiter).into_owned(),
        strip_tabs,
        quoted,
        depth,
    });
    i
}

/// Skips the bodies of the pending here-documents, which start at `from`;
/// a value template in one of them is an error.
pub(super) fn skip_here_documents(
    source: &str,
    from: usize,
    pending: &mut Vec<HereDoc>,
) -> Result<usize, Unprotected> {
    skip_bodies(source, from, pending, |line| {
        let mut search = 0;
        while let Some(found) = line[search..].find("{{") {
            let start = search + found;
            let close = line[start..]
                .find("}}")
                .map_or(line.len(), |n| start + n + 2);
            let expression = &line[start..close];
            let body = expression
                .strip_prefix("{{")
                .map(|e| e.strip_suffix("}}").unwrap_or(e))
                .unwrap_or(expression);
            if !is_raw(body) {
                return Some((start, expression.to_string()));
            }
            search = close;
        }
        None
    })
}

/// Skips the bodies of the pending here-documents, which start at `from`,
/// up to their delimiter lines; `value` finds a value in a line of a body
/// (its offset in the line and how to name it), which is an error.
pub(super) fn skip_bodies(
    text: &str,
    from: usize,
    pending: &mut Vec<HereDoc>,
    value: impl Fn(&str) -> Option<(usize, String)>,
) -> Result<usize, Unprotected> {
    let mut at = from;
    for doc in pending.drain(..) {
        // The line as the shell compares it with the delimiter: in a body
        // whose delimiter is not quoted, a backslash at the end of a line
        // joins the next line to it (`foo\` + `EOF` is not the end).
        let mut logical = String::new();
        loop {
            if at >= text.len() {
                return Ok(text.len());
            }
            let end = text[at..].find('\n').map_or(text.len(), |n| at + n);
            let line = &text[at..end];
            if let Some((offset, expression)) = value(line) {
                return Err(Unprotected {
                    offset: at + offset,
                    expression,
                    place: Place::HereDocument,
                });
            }
            at = (end + 1).min(text.len());
            let stripped = if doc.strip_tabs {
                line.trim_start_matches('\t')
            } else {
                line
            };
            let backslashes = stripped.len() - stripped.trim_end_matches('\\').len();
            if !doc.quoted && backslashes % 2 == 1 && end < text.len() {
                logical.push_str(&stripped[..stripped.len() - 1]);
                continue;
            }
            logical.push_str(stripped);
            if logical == doc.delimiter {
                break;
            }
            logical.clear();
        }
    }
    Ok(at)
}
