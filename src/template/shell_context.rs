//! Where each `{{ ... }}` of a shell template sits, as `/bin/sh` will read
//! the text around it.
//!
//! herd quotes every value for the shell (`'it'\''s'`). That quoting is a
//! whole word: it protects the value only where the shell reads words. Inside
//! `"..."` the single quotes are literal and `$(...)` in the value runs;
//! inside `'...'` the value's own quote ends the string; inside backquotes,
//! a comment or a here-document the value escapes in other ways. So a value
//! template may only sit where the shell reads words: unquoted, or within
//! `$(...)`. `{{ x | raw }}` is the user's explicit way out and is allowed
//! anywhere.
//!
//! This is a lexer for the template's literal text: Jinja comments and tags
//! are skipped (they print nothing), quoting, escapes, `$(...)`, comments
//! and here-documents are followed as the shell follows them.

/// Where a value template sits, when that is a place herd's quoting does
/// not protect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unprotected {
    /// Byte offset of the `{{` in the template.
    pub offset: usize,
    /// The expression as written, `{{ x }}`.
    pub expression: String,
    pub place: Place,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    DoubleQuotes,
    SingleQuotes,
    DollarQuotes,
    Backquotes,
    Comment,
    HereDocument,
}

impl Unprotected {
    /// What to tell the user: where the value is and what to write instead.
    pub fn message(&self) -> String {
        let e = &self.expression;
        match self.place {
            Place::DoubleQuotes | Place::SingleQuotes | Place::DollarQuotes => {
                let quotes = match self.place {
                    Place::DoubleQuotes => "double quotes",
                    Place::SingleQuotes => "single quotes",
                    _ => "$'...' quotes",
                };
                format!(
                    "`{e}` is inside {quotes}, where a value could run as shell code; \
                     herd quotes values for you: remove the quotes"
                )
            }
            Place::Backquotes => format!(
                "`{e}` is inside backquotes, where a value could run as shell code: write $(...) instead"
            ),
            Place::Comment => format!(
                "`{e}` is inside a shell comment, which a newline in the value would end: move it out of the comment"
            ),
            Place::HereDocument => format!(
                "`{e}` is inside a here-document, where the shell does not remove quotes and a value could run: \
                 write it with printf '%s\\n' {{{{ ... }}}} or ship the file with `upload`"
            ),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Context {
    /// Unquoted, at the top or inside `$(...)` (with its open parentheses).
    Words {
        parens: usize,
    },
    Double,
    Single,
    Dollar,
    Backquote,
}

struct HereDoc {
    delimiter: String,
    strip_tabs: bool,
}

/// The first value template in `source` that sits where quoting does not
/// protect it, if any.
pub fn find_unprotected(source: &str) -> Option<Unprotected> {
    let bytes = source.as_bytes();
    let mut stack = vec![Context::Words { parens: 0 }];
    let mut pending: Vec<HereDoc> = Vec::new();
    let mut in_comment = false;
    let mut i = 0;
    while i < bytes.len() {
        // Jinja first: it is expanded before the shell sees the text.
        if bytes[i] == b'{' {
            match bytes.get(i + 1) {
                Some(b'#') => {
                    i = find(bytes, i + 2, b"#}").map_or(bytes.len(), |end| end + 2);
                    continue;
                }
                Some(b'%') => {
                    let end = jinja_end(bytes, i + 2, b"%}");
                    let tag = inner(source, i + 2, end);
                    i = (end + 2).min(bytes.len());
                    if first_word(tag) == "raw" {
                        // The block's text is literal shell text: lex it, but it holds no values.
                        let close = find_endraw(source, i);
                        if let Some(found) = scan_literal(
                            source,
                            i,
                            close.0,
                            &mut stack,
                            &mut in_comment,
                            &mut pending,
                        ) {
                            return Some(found);
                        }
                        i = close.1;
                    }
                    continue;
                }
                Some(b'{') => {
                    let end = jinja_end(bytes, i + 2, b"}}");
                    let expression = &source[i..(end + 2).min(bytes.len())];
                    let place = if in_comment {
                        Some(Place::Comment)
                    } else {
                        match stack.last() {
                            Some(Context::Double) => Some(Place::DoubleQuotes),
                            Some(Context::Single) => Some(Place::SingleQuotes),
                            Some(Context::Dollar) => Some(Place::DollarQuotes),
                            Some(Context::Backquote) => Some(Place::Backquotes),
                            _ => None,
                        }
                    };
                    if let Some(place) = place {
                        if !is_raw(inner(source, i + 2, end)) {
                            return Some(Unprotected {
                                offset: i,
                                expression: expression.to_string(),
                                place,
                            });
                        }
                    }
                    i = (end + 2).min(bytes.len());
                    continue;
                }
                _ => {}
            }
        }
        if bytes[i] == b'\n'
            && !pending.is_empty()
            && matches!(stack.last(), Some(Context::Words { .. }))
        {
            in_comment = false;
            match skip_here_documents(source, i + 1, &mut pending) {
                Ok(next) => i = next,
                Err(found) => return Some(found),
            }
            continue;
        }
        i = step(bytes, i, &mut stack, &mut in_comment, &mut pending);
    }
    None
}

/// Lexes `source[from..to]`, text without Jinja in it; finds no values, but
/// a here-document it starts may hold some after it.
fn scan_literal(
    source: &str,
    from: usize,
    to: usize,
    stack: &mut Vec<Context>,
    in_comment: &mut bool,
    pending: &mut Vec<HereDoc>,
) -> Option<Unprotected> {
    let bytes = &source.as_bytes()[..to];
    let mut i = from;
    while i < to {
        if bytes[i] == b'\n'
            && !pending.is_empty()
            && matches!(stack.last(), Some(Context::Words { .. }))
        {
            *in_comment = false;
            match skip_here_documents(&source[..to], i + 1, pending) {
                Ok(next) => i = next,
                Err(found) => return Some(found),
            }
            continue;
        }
        i = step(bytes, i, stack, in_comment, pending);
    }
    None
}

/// One step of the shell lexer at `i`; returns where to go on.
fn step(
    bytes: &[u8],
    i: usize,
    stack: &mut Vec<Context>,
    in_comment: &mut bool,
    pending: &mut Vec<HereDoc>,
) -> usize {
    let c = bytes[i];
    if *in_comment {
        if c == b'\n' {
            *in_comment = false;
        }
        return i + 1;
    }
    let next = bytes.get(i + 1).copied();
    let Some(context) = stack.last().copied() else {
        return i + 1;
    };
    match context {
        Context::Words { parens } => match c {
            b'\\' => return i + 2,
            b'\'' => stack.push(Context::Single),
            b'"' => stack.push(Context::Double),
            b'`' => stack.push(Context::Backquote),
            b'$' if next == Some(b'\'') => {
                stack.push(Context::Dollar);
                return i + 2;
            }
            b'$' if next == Some(b'"') => {
                stack.push(Context::Double);
                return i + 2;
            }
            b'$' if next == Some(b'(') => {
                stack.push(Context::Words { parens: 0 });
                return i + 2;
            }
            b'(' => set_parens(stack, parens + 1),
            b')' if parens > 0 => set_parens(stack, parens - 1),
            b')' if stack.len() > 1 => {
                stack.pop();
            }
            b'#' if starts_word(bytes, i) => *in_comment = true,
            b'<' if next == Some(b'<') && bytes.get(i + 2) != Some(&b'<') => {
                return here_document_operator(bytes, i + 2, pending);
            }
            _ => {}
        },
        Context::Double => match c {
            b'\\' => return i + 2,
            b'"' => {
                stack.pop();
            }
            b'`' => stack.push(Context::Backquote),
            b'$' if next == Some(b'(') => {
                stack.push(Context::Words { parens: 0 });
                return i + 2;
            }
            _ => {}
        },
        Context::Single => {
            if c == b'\'' {
                stack.pop();
            }
        }
        Context::Dollar => match c {
            b'\\' => return i + 2,
            b'\'' => {
                stack.pop();
            }
            _ => {}
        },
        Context::Backquote => match c {
            b'\\' => return i + 2,
            b'`' => {
                stack.pop();
            }
            _ => {}
        },
    }
    i + 1
}

fn set_parens(stack: &mut [Context], parens: usize) {
    if let Some(top) = stack.last_mut() {
        *top = Context::Words { parens };
    }
}

/// A `#` starts a comment only at the start of a word.
fn starts_word(bytes: &[u8], i: usize) -> bool {
    i == 0
        || matches!(
            bytes[i - 1],
            b' ' | b'\t' | b'\n' | b';' | b'&' | b'|' | b'(' | b')' | b'<' | b'>'
        )
}

/// After `<<`: reads `-` and the delimiter word (quotes removed), and
/// remembers the here-document whose body starts at the next newline.
fn here_document_operator(bytes: &[u8], mut i: usize, pending: &mut Vec<HereDoc>) -> usize {
    let strip_tabs = bytes.get(i) == Some(&b'-');
    if strip_tabs {
        i += 1;
    }
    while matches!(bytes.get(i), Some(b' ' | b'\t')) {
        i += 1;
    }
    let mut delimiter = Vec::new();
    let mut quote: Option<u8> = None;
    while let Some(&c) = bytes.get(i) {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => delimiter.push(c),
            (None, b'\'' | b'"') => quote = Some(c),
            (None, b'\\') => {
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
    });
    i
}

/// Skips the bodies of the pending here-documents, which start at `from`;
/// a value template in one of them is an error.
fn skip_here_documents(
    source: &str,
    from: usize,
    pending: &mut Vec<HereDoc>,
) -> Result<usize, Unprotected> {
    let mut at = from;
    for doc in pending.drain(..) {
        loop {
            if at >= source.len() {
                return Ok(source.len());
            }
            let end = source[at..].find('\n').map_or(source.len(), |n| at + n);
            let line = &source[at..end];
            let compared = if doc.strip_tabs {
                line.trim_start_matches('\t')
            } else {
                line
            };
            at = (end + 1).min(source.len());
            if compared == doc.delimiter {
                break;
            }
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
                    return Err(Unprotected {
                        offset: end - line.len() + start,
                        expression: expression.to_string(),
                        place: Place::HereDocument,
                    });
                }
                search = close;
            }
        }
    }
    Ok(at)
}

/// Where `close` ends a Jinja tag or expression opened before `from`,
/// skipping string literals (which may contain `}}`).
fn jinja_end(bytes: &[u8], from: usize, close: &[u8]) -> usize {
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

fn find(bytes: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    (from..bytes.len()).find(|&i| bytes[i..].starts_with(needle))
}

/// The text between `from` and `to`, clipped to `source`.
fn inner(source: &str, from: usize, to: usize) -> &str {
    source
        .get(from.min(source.len())..to.min(source.len()))
        .unwrap_or("")
}

/// A tag's first word, without whitespace control (`{%- raw -%}`).
fn first_word(tag: &str) -> &str {
    tag.trim_matches(|c: char| c == '-' || c == '+' || c.is_whitespace())
        .split_whitespace()
        .next()
        .unwrap_or("")
}

/// The end of the `{% raw %}` block whose text starts at `from`: (where its
/// `{% endraw %}` starts, where it ends).
fn find_endraw(source: &str, from: usize) -> (usize, usize) {
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
fn is_raw(expression: &str) -> bool {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn place(source: &str) -> Option<Place> {
        find_unprotected(source).map(|u| u.place)
    }

    #[test]
    fn values_where_the_shell_reads_words_are_protected() {
        for source in [
            "echo {{ x }}",
            "ls {{ dir }}/current && echo done",
            "echo \"$(cat {{ file }})\"",
            "x=$(printf '%s' {{ x }})",
            "echo 'a' {{ x }} \"b\"",
            "echo \\\"{{ x }}",
            "echo it\\'s {{ x }}",
            "echo a#b {{ x }}",
            "{# \"{{ x }}\" #} echo {{ x }}",
            "{% if x == '\"' %}echo {{ x }}{% endif %}",
            "echo {{ \"'\" ~ x }}",
            "cat <<EOF\nplain\nEOF\necho {{ x }}",
            "echo $(( (1 + 2) )) {{ x }}",
            "echo \"{{ x | raw }}\"",
            "echo '{{ x|raw }}'",
            "{% raw %}echo \"{{ x }}\"{% endraw %}",
        ] {
            assert_eq!(place(source), None, "{source}");
        }
    }

    #[test]
    fn values_inside_quotes_and_other_unsafe_places_are_found() {
        for (source, expected) in [
            ("echo \"{{ x }}\"", Place::DoubleQuotes),
            ("echo \"a $(b) {{ x }}\"", Place::DoubleQuotes),
            ("echo '{{ x }}'", Place::SingleQuotes),
            ("echo \"it\\\"s {{ x }}\"", Place::DoubleQuotes),
            ("echo $'a\\'{{ x }}'", Place::DollarQuotes),
            ("echo `cat {{ x }}`", Place::Backquotes),
            ("echo \"$(echo \"{{ x }}\")\"", Place::DoubleQuotes),
            ("echo a # {{ x }}", Place::Comment),
            ("cat <<EOF\nkey={{ x }}\nEOF", Place::HereDocument),
            (
                "cat <<-'EOF' > f\n\tkey={{ x }}\n\tEOF",
                Place::HereDocument,
            ),
            ("echo \"{{ x | upper }}\"", Place::DoubleQuotes),
            ("echo \"{{ x | raw | upper }}\"", Place::DoubleQuotes),
            ("echo \"{{ 'a|raw' }}\"", Place::DoubleQuotes),
            ("echo \"{{- x -}}\"", Place::DoubleQuotes),
            ("{% if a %}echo \"{% endif %}{{ x }}\"", Place::DoubleQuotes),
        ] {
            assert_eq!(place(source), Some(expected), "{source}");
        }
    }

    mod any_text {
        use super::super::*;
        use proptest::prelude::*;

        proptest! {
            /// Whatever the text, the scan ends, and what it reports is a `{{` of it.
            #[test]
            fn the_scan_never_panics(text in "[a-z \n'\"`$()#<{}%|\\\t-]{0,60}") {
                if let Some(found) = find_unprotected(&text) {
                    prop_assert!(text[found.offset..].starts_with("{{"));
                }
            }
        }
    }

    #[test]
    fn the_offset_and_expression_point_at_the_value() {
        let found = find_unprotected("echo {{ a }} \"{{ b }}\"").unwrap();
        assert_eq!(found.offset, 14);
        assert_eq!(found.expression, "{{ b }}");
        let heredoc = find_unprotected("cat <<EOF\nk={{ v }}\nEOF").unwrap();
        assert_eq!(heredoc.offset, 12);
        assert_eq!(heredoc.expression, "{{ v }}");
    }
}
