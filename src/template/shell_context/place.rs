//! The verdicts: the places where herd's quoting does not protect a value,
//! and what the user is told about each.

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
    /// After `declare -n` (or `typeset`, `local`): the value assigned is the
    /// name a reference stands for, whose array subscript bash evaluates.
    Nameref,
    /// After `alias`: bash as `/bin/sh` expands aliases, so a word may
    /// stand for any command, `declare` included.
    Alias,
    /// Where bash reads a variable name, and evaluates an array subscript in
    /// it: the arguments of `unset` and `read`, a word of `declare` and the
    /// like, the word after `-v` of `printf`, `test` and `[`.
    Name,
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
