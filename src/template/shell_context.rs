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
    /// Right after `\` or `$`, which change how the shell reads the quote
    /// that starts a quoted value.
    Escaped,
    Arithmetic,
    Parameter,
    /// After `$'...'`, which dash does not know: the two shells read the
    /// rest of the text differently.
    AfterDollarQuote,
    /// After `((` at the start of a command: arithmetic for bash, two
    /// subshells for dash.
    DoubleParens,
    /// After a `'` inside `"${...}"`: a literal for POSIX shells, a quote
    /// for bash.
    QuoteInParameter,
    /// After a here-document operator whose line goes on past a newline
    /// inside `$(...)` or quotes.
    HereDocumentStart,
    /// In bash's `[[ ... ]]`, which evaluates the operands of `-eq` and the
    /// like as arithmetic.
    Test,
    /// An argument of `let`, which bash evaluates as arithmetic.
    Let,
    /// In an array subscript, `NAME[...]=`, which bash evaluates as
    /// arithmetic.
    Subscript,
    /// After `declare -i` (or `typeset`, `local`, `export`, `readonly`):
    /// bash evaluates what is assigned to an integer variable.
    Integer,
    /// Where bash reads a variable name, and evaluates an array subscript in
    /// it: the arguments of `unset` and `read`, a word of `declare` and the
    /// like, the word after `-v` of `printf`, `test` and `[`.
    Name,
}

impl Place {
    /// For the places that depend on how bash reads the text: where the
    /// value is and what to write instead.
    fn bash(self) -> Option<(&'static str, &'static str)> {
        Some(match self {
            Place::AfterDollarQuote => (
                "follows a $'...' string, which dash and bash read differently, so herd cannot tell where its quotes would end",
                "write '...' instead of $'...'",
            ),
            Place::DoubleParens => (
                "follows `((` at the start of a command, which bash reads as arithmetic (where a value could run) and dash as two subshells",
                "for subshells write `( (` with a space",
            ),
            Place::QuoteInParameter => (
                "follows a `'` inside \"${...}\", which dash reads as a plain character and bash as a quote",
                "move the `'` out of the ${...}",
            ),
            Place::HereDocumentStart => (
                "follows a here-document whose command line goes on inside $(...) or quotes, where shells disagree on where the body starts",
                "end the here-document's command on its own line",
            ),
            Place::Test => (
                "is inside [[ ... ]], where bash evaluates operands as arithmetic and a value could run",
                "write [ ... ] instead",
            ),
            Place::Let => (
                "is an argument of `let`, which bash evaluates as arithmetic where a value could run",
                "use $(( )) on a variable the value is not in, or test the value with [ ]",
            ),
            Place::Subscript => (
                "is inside an array subscript, which bash evaluates as arithmetic where a value could run",
                "move it out of the [...]",
            ),
            Place::Name => (
                "is where bash reads a variable name (after unset, read, declare, or printf, test or [ with -v), whose array subscript it evaluates where a value could run",
                "pass the value as data, not as a name",
            ),
            Place::Integer => (
                "follows a `declare -i` (or `typeset`, `local`, `export`, `readonly` with -i), after which bash evaluates what is assigned as arithmetic where a value could run",
                "drop the -i",
            ),
            _ => return None,
        })
    }
}

impl Unprotected {
    /// What to tell the user: where the value is and what to write instead.
    pub fn message(&self) -> String {
        let e = &self.expression;
        if let Some((why, fix)) = self.place.bash() {
            return format!("`{e}` {why}: {fix}");
        }
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
            Place::Arithmetic => format!(
                "`{e}` is inside $((...)), where the shell evaluates the value's text and it could run: \
                 move it out of the arithmetic"
            ),
            Place::Parameter => format!(
                "`{e}` is inside ${{...}}, where a value could run as shell code: move it out of the ${{...}}"
            ),
            Place::Escaped => format!(
                "`{e}` follows a `\\` or `$`, which would change how the shell reads herd's quotes around the value: \
                 put the `\\` or `$` elsewhere"
            ),
            _ => format!(
                "`{e}` is inside a here-document, where the shell does not remove quotes and a value could run: \
                 write it with printf '%s\\n' {{{{ ... }}}} or ship the file with `upload`"
            ),
        }
    }
}

impl Place {
    /// What to tell the user when the rendered command, not the template's
    /// text, shows a value in this place.
    pub fn rendered_message(self) -> String {
        let lands = "a value lands inside";
        let rendered = "once the template is rendered";
        if let Some((why, fix)) = self.bash() {
            return format!("{rendered}, a value {why}: {fix}");
        }
        match self {
            Place::DoubleQuotes | Place::SingleQuotes | Place::DollarQuotes => {
                let quotes = match self {
                    Place::DoubleQuotes => "double quotes",
                    Place::SingleQuotes => "single quotes",
                    _ => "$'...' quotes",
                };
                format!(
                    "{lands} {quotes} {rendered}, where it could run as shell code; \
                     herd quotes values for you: remove the quotes"
                )
            }
            Place::Backquotes => format!(
                "{lands} backquotes {rendered}, where it could run as shell code: write $(...) instead"
            ),
            Place::Comment => format!(
                "{lands} a shell comment {rendered}, which a newline in the value would end: \
                 move it out of the comment"
            ),
            Place::HereDocument | Place::HereDocumentStart => format!(
                "{lands} a here-document {rendered}, where the shell does not remove quotes and a value could run: \
                 write it with printf '%s\\n' {{{{ ... }}}} or ship the file with `upload`"
            ),
            Place::Arithmetic => format!(
                "{lands} $((...)) {rendered}, where the shell evaluates the value's text and it could run: \
                 move it out of the arithmetic"
            ),
            Place::Parameter => format!(
                "{lands} ${{...}} {rendered}, where a value could run as shell code: move it out of the ${{...}}"
            ),
            _ => format!(
                "a value lands right after a `\\` or `$` {rendered}, which would change how the shell \
                 reads herd's quotes around it: put the `\\` or `$` elsewhere"
            ),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Context {
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
    fn place(&self) -> Option<Place> {
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

/// What the lexer knows of unquoted text: enough to tell which `)` ends a
/// `$(...)`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Words {
    /// Parentheses opened in this text and not closed yet.
    parens: usize,
    /// The `case` commands open here, innermost last.
    cases: Vec<Case>,
    /// At the start of a command, where `case` and `esac` are reserved words.
    command: bool,
    /// In bash's `[[ ... ]]`.
    test: bool,
    /// In the arguments of `let`.
    arithmetic: bool,
    /// In the arguments of `declare`, `typeset`, `local`, `export` or
    /// `readonly`.
    declaring: bool,
    /// In the arguments of `unset`, `read`, `mapfile` or `readarray`.
    names: bool,
    /// In a command whose `-v` takes a variable name: `printf`, `test`, `[`.
    v_option: bool,
    /// The next word is the name after such a `-v`.
    name_next: bool,
}

impl Words {
    fn new() -> Words {
        Words {
            parens: 0,
            cases: Vec::new(),
            command: true,
            test: false,
            arithmetic: false,
            declaring: false,
            names: false,
            v_option: false,
            name_next: false,
        }
    }

    /// A command ends (`;`, `&`, `|`, newline): the next word starts one.
    fn end_command(&mut self) {
        self.command = true;
        self.arithmetic = false;
        self.declaring = false;
        self.names = false;
        self.v_option = false;
        self.name_next = false;
    }

    /// Where a value at the start of a word is a name bash may evaluate.
    fn takes_name(&self) -> bool {
        self.names || self.declaring || self.name_next
    }

    /// A word that is not a reserved word starts (or goes on) here.
    fn word(&mut self) {
        if let Some(Case::Head { subject }) = self.cases.last_mut() {
            *subject = true;
        }
        self.command = false;
        self.name_next = false;
    }

    /// A bare word of letters, as a whole: `case`, `in` and `esac` move a
    /// `case` command on.
    fn bare_word(&mut self, word: &[u8]) {
        self.name_next = false;
        match self.cases.last_mut() {
            Some(Case::Head { subject: false }) => self.word(),
            Some(Case::Head { subject: true }) => {
                if word == b"in" {
                    self.cases.pop();
                    self.cases.push(Case::Pattern);
                }
            }
            Some(Case::Pattern) => {
                if word == b"esac" {
                    self.cases.pop();
                    self.command = false;
                }
            }
            Some(Case::Body) | None => {
                if self.command && word == b"let" {
                    self.arithmetic = true;
                    self.command = false;
                } else if self.command
                    && matches!(word, b"unset" | b"read" | b"mapfile" | b"readarray")
                {
                    self.names = true;
                    self.command = false;
                } else if self.command && matches!(word, b"printf" | b"test") {
                    self.v_option = true;
                    self.command = false;
                } else if self.command
                    && matches!(
                        word,
                        b"declare" | b"typeset" | b"local" | b"export" | b"readonly"
                    )
                {
                    self.declaring = true;
                    self.command = false;
                } else if self.command && word == b"case" {
                    self.cases.push(Case::Head { subject: false });
                    self.command = false;
                } else if self.command && word == b"esac" && !self.cases.is_empty() {
                    self.cases.pop();
                    self.command = false;
                } else {
                    // After these, a command starts again (`if case ...`).
                    self.command = self.command
                        && matches!(
                            word,
                            b"then"
                                | b"do"
                                | b"else"
                                | b"elif"
                                | b"if"
                                | b"while"
                                | b"until"
                                | b"time"
                        );
                }
            }
        }
    }

    fn in_pattern(&self) -> bool {
        self.cases.last() == Some(&Case::Pattern)
    }
}

/// Where the lexer is in a `case WORD in PATTERN) COMMANDS ;; ... esac`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Case {
    /// Before `in`; whether the subject word has been read.
    Head { subject: bool },
    /// In a pattern list, where `)` ends the patterns (not a `$(`).
    Pattern,
    /// In the commands of a pattern, up to `;;` or `esac`.
    Body,
}

struct HereDoc {
    delimiter: String,
    strip_tabs: bool,
    /// Whether any part of the delimiter was quoted: then the body is taken
    /// as it is, and a backslash does not join lines.
    quoted: bool,
    /// How deep the lexer was at the operator: the body starts at a
    /// newline at that depth.
    depth: usize,
}

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

/// Whether a newline, here, starts the bodies of the pending here-documents.
fn body_starts(stack: &[Context], pending: &[HereDoc]) -> bool {
    pending.first().is_some_and(|doc| doc.depth == stack.len())
        && matches!(stack.last(), Some(Context::Words(_)))
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
                        let name = words.takes_name() && starts_word(bytes, i);
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

/// One step of the shell lexer at `i`; returns where to go on.
fn step(
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
                // `&&` and `||` within `[[ ... ]]` do not end it.
                b'&' | b'|' | b'\n' => {
                    words.end_command();
                    return i + 1;
                }
                b'[' if next == Some(b'[')
                    && words.command
                    && starts_word(bytes, i)
                    && bytes.get(i + 2).is_none_or(|&c| is_delimiter(c)) =>
                {
                    words.test = true;
                    words.command = false;
                    return i + 2;
                }
                b']' if next == Some(b']')
                    && words.test
                    && starts_word(bytes, i)
                    && bytes.get(i + 2).is_none_or(|&c| is_delimiter(c)) =>
                {
                    words.test = false;
                    return i + 2;
                }
                b'-' if words.v_option
                    && starts_word(bytes, i)
                    && next == Some(b'v')
                    && bytes.get(i + 2).is_none_or(|&c| is_delimiter(c)) =>
                {
                    words.word();
                    words.name_next = true;
                    return i + 2;
                }
                b'[' if words.command && starts_word(bytes, i) && next.is_none_or(is_delimiter) => {
                    words.v_option = true;
                    words.command = false;
                    return i + 1;
                }
                b'-' | b'+' if words.declaring && starts_word(bytes, i) => {
                    let end = (i..bytes.len())
                        .find(|&j| is_delimiter(bytes[j]))
                        .unwrap_or(bytes.len());
                    if bytes[i..end].contains(&b'i') {
                        note.get_or_insert(Place::Integer);
                    }
                    words.word();
                    return i + 1;
                }
                b' ' | b'\t' => return i + 1,
                // `{ case ...` and `! case ...`: a command still starts after these.
                b'{' | b'!'
                    if words.command && starts_word(bytes, i) && next.is_none_or(is_delimiter) =>
                {
                    return i + 1;
                }
                b'#' if starts_word(bytes, i) => {
                    *in_comment = true;
                    return i + 1;
                }
                b'<' if next == Some(b'<') && bytes.get(i + 2) != Some(&b'<') => {
                    return here_document_operator(bytes, i + 2, depth, pending);
                }
                b'<' | b'>' => return i + 1,
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
                    let end = (i..bytes.len())
                        .find(|&j| !bytes[j].is_ascii_alphabetic())
                        .unwrap_or(bytes.len());
                    if end == bytes.len() || is_delimiter(bytes[end]) {
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
        Context::Subscript => match c {
            b'\\' => return i + 2,
            b']' => {
                stack.pop();
            }
            b'\'' => stack.push(Context::Single),
            b'"' => stack.push(Context::Double),
            b'`' => stack.push(Context::Backquote),
            b'$' => return expansion(bytes, i, stack),
            _ => {}
        },
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
        Context::Brace { .. } => match c {
            b'\\' => return i + 2,
            b'}' => {
                stack.pop();
            }
            b'\'' => stack.push(Context::Single),
            b'"' => stack.push(Context::Double),
            b'`' => stack.push(Context::Backquote),
            b'$' => return expansion(bytes, i, stack),
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

/// At a `$` in double quotes, arithmetic or `${...}`: opens what it starts.
fn expansion(bytes: &[u8], i: usize, stack: &mut Vec<Context>) -> usize {
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

/// Bytes that end a word.
fn is_delimiter(c: u8) -> bool {
    matches!(
        c,
        b' ' | b'\t' | b'\n' | b';' | b'&' | b'|' | b'(' | b')' | b'<' | b'>'
    )
}

/// A `#` starts a comment only at the start of a word.
fn starts_word(bytes: &[u8], i: usize) -> bool {
    i == 0 || is_delimiter(bytes[i - 1])
}

/// After `<<`: reads `-` and the delimiter word (quotes removed), and
/// remembers the here-document whose body starts at the next newline.
fn here_document_operator(
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
fn skip_here_documents(
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
fn skip_bodies(
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
            "echo \"$(case a in (a|b) echo x;; *) echo y;; esac)\" {{ x }}",
            "echo \"$(case a in a) case b in b) :;; esac;; esac)\" {{ x }}",
            "x=$(case {{ x }} in a) echo;; esac) {{ x }}",
            "echo case $(echo esac) {{ x }}",
            "echo \"$({ case a in a) echo;; esac; })\" {{ x }}",
            "echo \"$(if true; then case a in a) echo;; esac; fi)\" {{ x }}",
            "cat <<'EOF'\nfoo\\\nEOF\necho {{ x }}",
            "cat <<EOF\nfoo\\\\\nEOF\necho {{ x }}",
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
            ("echo $'a\\'{{ x }}'", Place::AfterDollarQuote),
            ("echo `cat {{ x }}`", Place::Backquotes),
            ("echo $(( {{ x }} + 1 ))", Place::Arithmetic),
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
            // A pattern's `)` does not end the `$(...)`.
            (
                "echo \"$(case a in a) echo \"{{ x }}\";; esac)\"",
                Place::DoubleQuotes,
            ),
            // A backslash at the end of a body line joins the next: that
            // `EOF` is not the delimiter.
            ("cat <<EOF\nfoo\\\nEOF\n{{ x }}\nEOF", Place::HereDocument),
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

            /// Whatever the rendered text, the check ends and reports a byte
            /// offset in it.
            #[test]
            fn the_rendered_check_never_panics(text in "([a-z \n'\"`$(){}#<;|\\\t]|@v|é){0,60}") {
                if let Some((offset, _)) = find_misplaced(&text, "@v") {
                    prop_assert!(offset <= text.len());
                }
            }
        }
    }

    /// Where the placeholder `@v` sits in rendered text.
    fn rendered(text: &str) -> Option<Place> {
        find_misplaced(text, "@v").map(|(_, place)| place)
    }

    #[test]
    fn placeholders_are_found_in_rendered_text_by_the_same_rules() {
        for text in [
            "echo @v",
            "echo \"$(printf %s @v)\"",
            "echo \"$(case a in a) echo @v;; esac)\"",
            "for i in 1 2; do echo @v; done",
            "cat <<'EOF'\nx\\\nEOF\necho @v",
            "a=@v b=x@vy \"\"@v\"\"",
            "echo $(( (1 + 2) * 3 )) \"${a:-\"}\"}\" @v",
            "( (true) ) && echo $(echo $((1))) @v",
        ] {
            assert_eq!(rendered(text), None, "{text}");
        }
        for (text, expected) in [
            ("echo \"@v\"", Place::DoubleQuotes),
            (
                "echo \"$(case a in a) echo \"@v\";; esac)\"",
                Place::DoubleQuotes,
            ),
            ("echo a # note @v", Place::Comment),
            ("cat <<EOF\n @v\nEOF", Place::HereDocument),
            ("cat <<EOF\nfoo\\\nEOF\n@v\nEOF", Place::HereDocument),
            ("cat <<@v\nx\n", Place::HereDocument),
            ("echo \\@v", Place::Escaped),
            ("echo $@v", Place::Escaped),
            ("echo \"\\@v\"", Place::DoubleQuotes),
            ("echo `@v`", Place::Backquotes),
            ("echo $(( @v + 1 ))", Place::Arithmetic),
            ("echo \"$(( (@v) ))\"", Place::Arithmetic),
            ("(( @v > 1 )) && echo", Place::DoubleParens),
            ("echo ${a[@v]}", Place::Parameter),
            ("echo \"${a:-@v}\"", Place::Parameter),
        ] {
            assert_eq!(rendered(text), Some(expected), "{text}");
        }
    }

    #[test]
    fn where_dash_and_bash_read_the_text_differently_values_are_refused() {
        for (text, expected) in [
            // A here-document's line that goes on inside `$(`.
            ("cat <<EOF; x=$(true\nEOF\n)\n@v\nEOF", Place::HereDocument),
            (
                "cat <<EOF; x=$(true\nEOF\n) @v\nEOF",
                Place::HereDocumentStart,
            ),
            ("cat <<EOF; echo \"a\n@v\"\nEOF", Place::HereDocumentStart),
            // `$'...'` is bash's; dash reads `$` and a quoted string.
            ("echo $'\\'' @v '", Place::AfterDollarQuote),
            ("echo $'a' @v", Place::AfterDollarQuote),
            // `((` at the start of a command.
            ("((echo ') @v'))", Place::DoubleParens),
            ("((cd @v && ls) && echo ok)", Place::DoubleParens),
            // A `'` in "${...}": literal to POSIX shells, a quote to bash.
            ("unset x; echo \"${x-'}\"'}\"@v'", Place::QuoteInParameter),
            ("echo \"${HOME:-it's}\" @v", Place::QuoteInParameter),
            // A backslash-newline is gone before the shell reads tokens.
            ("cat <\\\n<EOF\n@v\nEOF", Place::HereDocument),
            ("echo $\\\n(( @v )) || true", Place::Arithmetic),
            ("echo $\\\n@v", Place::Escaped),
            ("echo \\\n\"@v\"", Place::DoubleQuotes),
            ("cat <<E\\\nOF\n@v\nEOF", Place::HereDocument),
            // What bash evaluates as arithmetic.
            ("[[ @v -eq 1 ]]", Place::Test),
            ("[[ 1 -eq 1 && @v -eq 1 ]]", Place::Test),
            ("[[ $(echo @v) -eq 1 ]]", Place::Test),
            ("if [[ @v -eq 1 ]]; then :; fi", Place::Test),
            ("x && ! [[ @v -eq 1 ]]", Place::Test),
            ("[[ a == b || @v -eq 1 ]]", Place::Test),
            ("let n=@v", Place::Let),
            ("true; let n=1 @v", Place::Let),
            ("a[@v]=1", Place::Subscript),
            ("x=1; a[1+@v]=1", Place::Subscript),
            ("declare -i n=@v", Place::Integer),
            ("local -ai n; n=@v", Place::Integer),
            ("echo $(( $(echo @v) ))", Place::Arithmetic),
            ("echo ${a[$(echo @v)]}", Place::Parameter),
            ("echo `echo $(echo @v)`", Place::Backquotes),
            ("unset @v", Place::Name),
            ("read -r x @v", Place::Name),
            ("declare @v", Place::Name),
            ("local x @v", Place::Name),
            ("printf -v @v %s x", Place::Name),
            ("test -v @v", Place::Name),
            ("[ -v @v ]", Place::Name),
        ] {
            assert_eq!(rendered(text), Some(expected), "{text:?}");
        }
        for text in [
            "( (cd @v && ls) && echo ok)",
            "echo \"${x-'a b'}\" @v",
            "echo ${x-'}'} @v",
            "echo \"$'\" @v",
            "echo \\\n  @v",
            "ls \\\n  -l @v \\\n  -a",
            "echo '\\\n' @v",
            "cat <<'EOF'\nfoo\\\nEOF\necho @v",
            "[[ -n x ]] && echo @v",
            "[[ -n x || -n y ]]; echo @v",
            "let n=1; echo @v",
            "echo [[ @v",
            "[ @v -eq 1 ]",
            "echo a[@v]",
            "declare -r x=@v",
            "export X=@v",
            "x=$(cat <<EOF\nbody\nEOF\n) && echo @v",
            "let_me @v",
            "printf -v out %s @v",
            "grep -v @v f",
            "[ -n @v ]",
            "declare x=@v",
            "local x=@v y=@v",
            "echo unset @v",
            "read x; echo @v",
            "touch @v/r; i=0; while [ ! -e @v/go ] && [ $i -lt 120 ]; do sleep 0.5; i=$((i+1)); done",
            "p=$(cat @v); kill -TERM $p; while kill -0 $p && ! grep -q \"^S\" /proc/$p/status; do :; done",
        ] {
            assert_eq!(rendered(text), None, "{text:?}");
        }
        // The template's own text says so too, pointing at the `{{ }}`.
        assert_eq!(
            place("((cd {{ x }} && ls) && echo ok)"),
            Some(Place::DoubleParens)
        );
        assert_eq!(place("echo $'a' {{ x }}"), Some(Place::AfterDollarQuote));
        assert_eq!(place("( (cd {{ x }} && ls) && echo ok)"), None);
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
