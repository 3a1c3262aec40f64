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
//! The lexer follows quoting, escapes, `$(...)` (and the `case` patterns in
//! it), arithmetic, `${...}`, comments and here-documents as the shell
//! follows them. It reads two texts: the template's (`find_unprotected`:
//! Jinja comments and tags are skipped, which points at the `{{ }}` at
//! fault when the text alone shows it), and the rendered command with a
//! placeholder for each value (`find_misplaced`), which is what the shell
//! will get once tags, loops, macros and whitespace control have run.
//!
//! A host's `/bin/sh` may be dash or bash. Where the two split the text
//! differently (`$'...'`, `((` at a command's start, a `'` in `"${...}"`, a
//! here-document whose line goes on inside `$(`), every value after it is
//! refused; so is a value where bash evaluates it as arithmetic or reads it
//! as a variable name (whose array subscript runs `$(...)`). The rendered
//! check takes backslash-newlines out as the shell does, before it reads
//! the bytes around them.

mod bash;
mod here_doc;
mod jinja;
mod lexer;
mod place;
#[cfg(test)]
mod tests;
mod words;

pub use place::{Place, Unprotected};

use here_doc::{body_starts, here_document_operator, skip_bodies, skip_here_documents, HereDoc};
use jinja::{find, find_endraw, first_word, inner, is_raw, jinja_end};
use lexer::{starts_word, step, Context};
use words::{Case, Words};

/// The first value template in `source` that sits where quoting does not
/// protect it, if any.
pub fn find_unprotected(source: &str) -> Option<Unprotected> {
    let bytes = source.as_bytes();
    let mut stack = vec![Context::Words(Words::new())];
    let mut pending: Vec<HereDoc> = Vec::new();
    let mut in_comment = false;
    let mut note: Option<Place> = None;
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
                    } else if note.is_some() {
                        note
                    } else {
                        stack.last().and_then(Context::place)
                    };
                    if let Some(Context::Words(words)) = stack.last_mut() {
                        words.word();
                    }
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
        if bytes[i] == b'\n' && body_starts(&stack, &pending) {
            in_comment = false;
            match skip_here_documents(source, i + 1, &mut pending) {
                Ok(next) => i = next,
                Err(found) => return Some(found),
            }
            continue;
        }
        i = step(
            bytes,
            i,
            &mut stack,
            &mut in_comment,
            &mut pending,
            &mut note,
        );
    }
    None
}

/// The first placeholder (a value that herd will quote, written as a word
/// starting with `prefix`) in rendered shell `text` that sits where quoting
/// does not protect it: its byte offset and place.
///
/// This is the check that counts. The text is what the shell will get,
/// minus the values: template tags, whitespace control, loops, macros and
/// `| raw` values have all been applied.
pub fn find_misplaced(text: &str, prefix: &str) -> Option<(usize, Place)> {
    // The text as the lexer goes: each backslash-newline is taken out where
    // the shell takes it out (outside single quotes, comments and
    // here-document bodies), before the bytes around it are read.
    let mut text = text.to_string();
    let mut stack = vec![Context::Words(Words::new())];
    let mut pending: Vec<HereDoc> = Vec::new();
    let mut in_comment = false;
    // A construct before which dash and bash read the text alike, and after
    // which they may not: any value after it is refused.
    let mut note: Option<Place> = None;
    let mut i = 0;
    while i < text.len() {
        if !in_comment && !matches!(stack.last(), Some(Context::Single | Context::Dollar)) {
            join_lines(&mut text, i);
        }
        let bytes = text.as_bytes();
        if i >= bytes.len() {
            break;
        }
        if bytes[i..].starts_with(prefix.as_bytes()) {
            let place = if in_comment {
                Some(Place::Comment)
            } else if note.is_some() {
                note
            } else {
                let outer = stack.iter().rev().find_map(|context| match context {
                    Context::Backquote
                    | Context::Arithmetic(_)
                    | Context::Brace { .. }
                    | Context::Subscript => context.place(),
                    Context::Words(words) if words.test => Some(Place::Test),
                    Context::Words(words) if words.arithmetic => Some(Place::Let),
                    _ => None,
                });
                match stack.last_mut() {
                    // After `$` the quotes would be read as `$'...'`.
                    Some(Context::Words(_)) if i > 0 && bytes[i - 1] == b'$' => {
                        Some(Place::Escaped)
                    }
                    Some(Context::Words(words)) => {
                        // A redirection's target is no name; the name
                        // after an option may be attached to it (`-vNAME`).
                        let name = !words.redirect
                            && ((words.takes_name() && starts_word(bytes, i)) || words.name_next);
                        words.word();
                        outer.or(name.then_some(Place::Name))
                    }
                    Some(context) => context.place(),
                    None => None,
                }
            };
            if let Some(place) = place {
                return Some((i, place));
            }
            i += prefix.len();
            continue;
        }
        if bytes[i] == b'\n' && !pending.is_empty() {
            if body_starts(&stack, &pending) {
                in_comment = false;
                let found = skip_bodies(&text, i + 1, &mut pending, |line| {
                    line.find(prefix).map(|at| (at, String::new()))
                });
                match found {
                    Ok(next) => i = next,
                    Err(found) => return Some((found.offset, Place::HereDocument)),
                }
                continue;
            }
            // The line of a here-document operator goes on inside `$(` or
            // quotes: where its body starts is for each shell to say.
            note.get_or_insert(Place::HereDocumentStart);
        }
        let before = pending.len();
        let place = match stack.last().and_then(Context::place) {
            Some(place) => place,
            None if in_comment => Place::Comment,
            None => Place::Escaped,
        };
        let next = step(
            bytes,
            i,
            &mut stack,
            &mut in_comment,
            &mut pending,
            &mut note,
        );
        // A value as a here-document's delimiter decides where the body ends.
        let operator = &bytes[i..next.min(bytes.len())];
        if pending.len() > before && find(operator, 0, prefix.as_bytes()).is_some() {
            return Some((i, Place::HereDocument));
        }
        // A step over more than one byte (`\x`) must not take in the start
        // of a value: its opening quote would be escaped.
        if next > i + 1 {
            let skipped = &bytes[i + 1..(next + prefix.len()).min(bytes.len())];
            if let Some(at) = find(skipped, 0, prefix.as_bytes()) {
                if i + 1 + at < next {
                    return Some((i + 1, place));
                }
            }
        }
        i = next;
    }
    None
}

/// Takes out the backslash-newlines at `i` and just after it, as far as the
/// lexer looks ahead from `i` (a `<<`, `$((`, a word): up to a byte after
/// which the shell might not take them out (a quote, an escape, a comment,
/// a newline).
fn join_lines(text: &mut String, i: usize) {
    let mut at = i;
    while at < text.len() {
        while text.as_bytes()[at..].starts_with(b"\\\n") {
            text.replace_range(at..at + 2, "");
        }
        let Some(&c) = text.as_bytes().get(at) else {
            return;
        };
        if matches!(c, b'\'' | b'\\' | b'#' | b'\n')
            || (at >= i + 3 && !(c.is_ascii_alphanumeric() || c == b'_'))
        {
            return;
        }
        at += 1;
    }
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
        if bytes[i] == b'\n' && body_starts(stack, pending) {
            *in_comment = false;
            match skip_here_documents(&source[..to], i + 1, pending) {
                Ok(next) => i = next,
                Err(found) => return Some(found),
            }
            continue;
        }
        i = step(bytes, i, stack, in_comment, pending, &mut None);
    }
    None
}
