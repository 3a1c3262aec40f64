//! The shell lexer's state machine: one step at a time through quotes,
//! escapes, `$(...)`, arithmetic, `${...}` and comments.

use super::{here_document_operator, Case, HereDoc, Place, Words};

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Context {
    /// Unquoted, at the top or inside `$(...)`.
    Words(Words),
    Double,
    Single,
    Dollar,
    Backquote,
    /// `$((...))` or bash's `((...))`, with its open parentheses: the shell
    /// expands the text as in double quotes, then evaluates it.
    Arithmetic(usize),
    /// `${...}`: bash evaluates an array subscript in it. Within double
    /// quotes, a `'` in it is a plain character to POSIX shells.
    Brace {
        quoted: bool,
    },
    /// The `[...]` of `NAME[...]=`, which bash evaluates as arithmetic.
    Subscript,
}

impl Context {
    /// Where a value in this context is, when quoting does not protect it.
    pub(super) fn place(&self) -> Option<Place> {
        match self {
            Context::Words(_) => None,
            Context::Double => Some(Place::DoubleQuotes),
            Context::Single => Some(Place::SingleQuotes),
            Context::Dollar => Some(Place::DollarQuotes),
            Context::Backquote => Some(Place::Backquotes),
            Context::Arithmetic(_) => Some(Place::Arithmetic),
            Context::Brace { .. } => Some(Place::Parameter),
            Context::Subscript => Some(Place::Subscript),
        }
    }
}

/// One step of the shell lexer at `i`; returns where to go on.
pub(super) fn step(
    bytes: &[u8],
    i: usize,
    stack: &mut Vec<Context>,
    in_comment: &mut bool,
    pending: &mut Vec<HereDoc>,
    note: &mut Option<Place>,
) -> usize {
    let c = bytes[i];
    if *in_comment {
        if c == b'\n' {
            *in_comment = false;
        }
        return i + 1;
    }
    let next = bytes.get(i + 1).copied();
    let depth = stack.len();
    let Some(context) = stack.last_mut() else {
        return i + 1;
    };
    match context {
        Context::Words(words) => {
            if words.prefix && starts_word(bytes, i) && !matches!(c, b' ' | b'\t') {
                // The command's name, or (after `command` or `builtin`) an
                // option of theirs; an assignment sets `prefix` again.
                words.prefix = c == b'-';
                words.command = true;
            }
            if words.command && starts_word(bytes, i) {
                if let Some((name, end)) = quoted_name(bytes, i) {
                    // `\declare`, `'unset'`, `de"clare"`: the builtin still.
                    words.bare_word(name.as_bytes());
                    return end;
                }
            }
            let opened = match c {
                b'\\' => {
                    words.word();
                    return i + 2;
                }
                b'\'' => Context::Single,
                b'"' => Context::Double,
                b'`' => Context::Backquote,
                b'$' if next == Some(b'\'') => {
                    note.get_or_insert(Place::AfterDollarQuote);
                    Context::Dollar
                }
                b'$' if next == Some(b'"') => Context::Double,
                b'$' if next == Some(b'(') && bytes.get(i + 2) == Some(&b'(') => {
                    words.word();
                    stack.push(Context::Arithmetic(0));
                    return i + 3;
                }
                b'$' if next == Some(b'(') => Context::Words(Words::new()),
                b'$' if next == Some(b'{') => Context::Brace { quoted: false },
                b'(' if next == Some(b'(') && words.command && !words.in_pattern() => {
                    note.get_or_insert(Place::DoubleParens);
                    words.command = false;
                    stack.push(Context::Arithmetic(0));
                    return i + 2;
                }
                b'(' => {
                    // A pattern's optional opening parenthesis is not counted.
                    if !words.in_pattern() {
                        words.parens += 1;
                        words.command = true;
                    }
                    return i + 1;
                }
                b')' => {
                    if words.in_pattern() {
                        words.cases.pop();
                        words.cases.push(Case::Body);
                        words.command = true;
                    } else if words.parens > 0 {
                        words.parens -= 1;
                        words.command = false;
                    } else if depth > 1 {
                        stack.pop();
                    }
                    return i + 1;
                }
                b';' => {
                    // `;;`, `;&` and `;;&` end a pattern's commands.
                    let ends = match (next, bytes.get(i + 2)) {
                        (Some(b';'), Some(b'&')) => 3,
                        (Some(b';' | b'&'), _) => 2,
                        _ => 1,
                    };
                    if ends > 1 && words.cases.last() == Some(&Case::Body) {
                        words.cases.pop();
                        words.cases.push(Case::Pattern);
                        return i + ends;
                    }
                    words.end_command();
                    words.test = false;
                    return i + 1;
                }
                // Bash's `&>` and `&>>` redirect; they do not end the command.
                b'&' if next == Some(b'>') => {
                    words.redirect = true;
                    return i + 2;
                }
                // `&&` and `||` within `[[ ... ]]` do not end it.
                b'&' | b'|' | b'\n' => {
                    words.end_command();
                    return i + 1;
                }
                b'[' if next == Some(b'[') && words.command && two_byte_word(bytes, i) => {
                    words.test = true;
                    words.command = false;
                    return i + 2;
                }
                b']' if next == Some(b']') && words.test && two_byte_word(bytes, i) => {
                    words.test = false;
                    return i + 2;
                }
                // An option of a command that reads variable names: its
                // letters, and what a name may follow (`printf -v NAME`,
                // `-vNAME`, `wait -np NAME`, `read -ra NAME`, `-raNAME`).
                b'-' if (words.names || words.name_option.is_some())
                    && starts_word(bytes, i)
                    && !words.redirect =>
                {
                    let (letters, end) = option_word(bytes, i);
                    let flags = &bytes[i + 1..letters];
                    let attached = letters < end;
                    let takes = match words.name_option {
                        Some(b'p') => flags.contains(&b'p'),
                        Some(flag) => flags == [flag] || (attached && flags.ends_with(&[flag])),
                        // Every word of `read` and the like is a name: one
                        // attached to an option too.
                        None => attached,
                    };
                    words.word();
                    words.name_next = takes;
                    return letters;
                }
                b'[' if words.command && starts_word(bytes, i) && next.is_none_or(is_delimiter) => {
                    words.name_option = Some(b'v');
                    words.command = false;
                    return i + 1;
                }
                b'-' | b'+' if words.declaring && starts_word(bytes, i) && !words.redirect => {
                    let (letters, end) = option_word(bytes, i);
                    let flags = &bytes[i + 1..letters];
                    if flags.contains(&b'i') {
                        note.get_or_insert(Place::Integer);
                    }
                    if words.nameref && flags.contains(&b'n') {
                        note.get_or_insert(Place::Nameref);
                    }
                    words.word();
                    // A word attached to the options is a name too.
                    words.name_next = letters < end;
                    return letters;
                }
                b' ' | b'\t' => return i + 1,
                // `{ case ...` and `! case ...`: a command still starts after
                // these; after `{` also where it opens a function's body
                // (`f() { declare ...; }`).
                b'{' if starts_word(bytes, i) && next.is_none_or(is_delimiter) => {
                    words.command = true;
                    return i + 1;
                }
                b'!' if words.command && starts_word(bytes, i) && next.is_none_or(is_delimiter) => {
                    return i + 1;
                }
                b'#' if starts_word(bytes, i) => {
                    *in_comment = true;
                    return i + 1;
                }
                b'<' if next == Some(b'<') && bytes.get(i + 2) != Some(&b'<') => {
                    return here_document_operator(bytes, i + 2, depth, pending);
                }
                // A redirection (`<`, `>`, `>&`, `<&`): its target is no
                // argument of the command.
                b'<' | b'>' => {
                    words.redirect = true;
                    return if next == Some(b'&') { i + 2 } else { i + 1 };
                }
                c if c.is_ascii_alphabetic() && starts_word(bytes, i) => {
                    let name = (i..bytes.len())
                        .find(|&j| !(bytes[j].is_ascii_alphanumeric() || bytes[j] == b'_'))
                        .unwrap_or(bytes.len());
                    if words.command && bytes.get(name) == Some(&b'[') {
                        // `NAME[...]=`: an array element's assignment.
                        words.word();
                        stack.push(Context::Subscript);
                        return name + 1;
                    }
                    if words.command && bytes.get(name) == Some(&b'=') {
                        // `NAME=value` before a command: the next word
                        // names the command.
                        words.word();
                        words.prefix = true;
                        return name + 1;
                    }
                    let end = (i..bytes.len())
                        .find(|&j| !bytes[j].is_ascii_alphabetic())
                        .unwrap_or(bytes.len());
                    if end == bytes.len() || is_delimiter(bytes[end]) {
                        if words.command && &bytes[i..end] == b"alias" {
                            note.get_or_insert(Place::Alias);
                        }
                        words.bare_word(&bytes[i..end]);
                    } else {
                        words.word();
                    }
                    return end;
                }
                _ => {
                    words.word();
                    return i + 1;
                }
            };
            words.word();
            let width = if c == b'$' { 2 } else { 1 };
            stack.push(opened);
            return i + width;
        }
        Context::Double => match c {
            b'\\' => return i + 2,
            b'"' => {
                stack.pop();
            }
            b'`' => stack.push(Context::Backquote),
            b'$' => return expansion(bytes, i, stack),
            _ => {}
        },
        Context::Arithmetic(parens) => match c {
            b'\\' => return i + 2,
            b'(' => *parens += 1,
            b')' if *parens > 0 => *parens -= 1,
            b')' => {
                stack.pop();
                return if next == Some(b')') { i + 2 } else { i + 1 };
            }
            b'"' => stack.push(Context::Double),
            b'`' => stack.push(Context::Backquote),
            b'$' => return expansion(bytes, i, stack),
            _ => {}
        },
        Context::Subscript => return bracketed(bytes, i, stack, b']'),
        Context::Brace { quoted: true } if c == b'\'' => {
            // A plain character to POSIX shells; bash takes it for a quote.
            // They agree on where the text goes on when bash's quoted
            // string holds nothing either would read otherwise.
            let plain = |&b: &u8| !matches!(b, b'}' | b'"' | b'\\' | b'$' | b'`' | b'\n' | 1);
            match (i + 1..bytes.len()).find(|&j| bytes[j] == b'\'') {
                Some(end) if bytes[i + 1..end].iter().all(plain) => return end + 1,
                _ => {
                    note.get_or_insert(Place::QuoteInParameter);
                }
            }
        }
        Context::Brace { .. } => return bracketed(bytes, i, stack, b'}'),
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

/// One byte inside `NAME[...]` or `${...}`, which `close` ends: quotes and
/// expansions nest there as they do in words.
fn bracketed(bytes: &[u8], i: usize, stack: &mut Vec<Context>, close: u8) -> usize {
    match bytes[i] {
        b'\\' => return i + 2,
        c if c == close => {
            stack.pop();
        }
        b'\'' => stack.push(Context::Single),
        b'"' => stack.push(Context::Double),
        b'`' => stack.push(Context::Backquote),
        b'$' => return expansion(bytes, i, stack),
        _ => {}
    }
    i + 1
}

/// At a `$` in double quotes, arithmetic or `${...}`: opens what it starts.
pub(super) fn expansion(bytes: &[u8], i: usize, stack: &mut Vec<Context>) -> usize {
    match (bytes.get(i + 1), bytes.get(i + 2)) {
        (Some(b'('), Some(b'(')) => {
            stack.push(Context::Arithmetic(0));
            i + 3
        }
        (Some(b'('), _) => {
            stack.push(Context::Words(Words::new()));
            i + 2
        }
        (Some(b'{'), _) => {
            let quoted = stack
                .iter()
                .rev()
                .take_while(|c| !matches!(c, Context::Words(_)))
                .any(|c| *c == Context::Double);
            stack.push(Context::Brace { quoted });
            i + 2
        }
        _ => i + 1,
    }
}

/// A command's name written with quotes or backslashes (`\\declare`,
/// `'unset'`, `de"clare"`), as bash reads it, and where it ends; `None`
/// for a plain word (the lexer reads it as it goes) or one with anything
/// but letters, `_`, quotes and backslashes in it.
fn quoted_name(bytes: &[u8], i: usize) -> Option<(String, usize)> {
    let mut name = String::new();
    let mut quoted = false;
    let mut j = i;
    while j < bytes.len() && !is_delimiter(bytes[j]) {
        match bytes[j] {
            b'\\' => {
                let next = *bytes.get(j + 1)?;
                if !(next.is_ascii_alphabetic() || next == b'_') {
                    return None;
                }
                name.push(char::from(next));
                quoted = true;
                j += 2;
            }
            quote @ (b'\'' | b'"') => {
                let close = (j + 1..bytes.len()).find(|&k| bytes[k] == quote)?;
                let inside = &bytes[j + 1..close];
                if !inside.iter().all(|b| b.is_ascii_alphabetic() || *b == b'_') {
                    return None;
                }
                name.push_str(std::str::from_utf8(inside).ok()?);
                quoted = true;
                j = close + 1;
            }
            c if c.is_ascii_alphabetic() || c == b'_' => {
                name.push(char::from(c));
                j += 1;
            }
            _ => return None,
        }
    }
    (quoted && !name.is_empty()).then_some((name, j))
}

/// For an option word at `i` (`-ra`, `-vNAME`): where its letters end, and
/// where the word ends.
fn option_word(bytes: &[u8], i: usize) -> (usize, usize) {
    let end = (i..bytes.len())
        .find(|&j| is_delimiter(bytes[j]))
        .unwrap_or(bytes.len());
    let letters = (i + 1..end)
        .find(|&j| !bytes[j].is_ascii_alphabetic())
        .unwrap_or(end);
    (letters, end)
}

/// Bytes that end a word.
pub(super) fn is_delimiter(c: u8) -> bool {
    matches!(
        c,
        b' ' | b'\t' | b'\n' | b';' | b'&' | b'|' | b'(' | b')' | b'<' | b'>'
    )
}

/// A `#` starts a comment only at the start of a word.
pub(super) fn starts_word(bytes: &[u8], i: usize) -> bool {
    i == 0 || is_delimiter(bytes[i - 1])
}

/// Whether the two bytes at `i` (`[[`, `]]`, `-v`) are a whole word.
fn two_byte_word(bytes: &[u8], i: usize) -> bool {
    starts_word(bytes, i) && bytes.get(i + 2).is_none_or(|&c| is_delimiter(c))
}
