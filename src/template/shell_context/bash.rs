//! Where dash and bash part ways, or bash evaluates a value as arithmetic
//! or a variable name: why such a place is refused and what to write instead.

use super::Place;

impl Place {
    /// For the places that depend on how bash reads the text: where the
    /// value is and what to write instead.
    pub(super) fn bash(self) -> Option<(&'static str, &'static str)> {
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
                "is where bash reads a variable name (after unset, read, getopts, declare and the like, printf, test or [ with -v, or wait with -p; also after `command`, `builtin`, an assignment, or a quoted name such as `\\declare`), whose array subscript it evaluates where a value could run",
                "pass the value as data, not as a name",
            ),
            Place::Alias => (
                "follows an `alias`, after which a word may stand for any command (bash as /bin/sh expands aliases), so herd cannot tell whether bash reads the value as a name",
                "use a function instead of the alias",
            ),
            Place::Nameref => (
                "follows a `declare -n` (or `typeset`, `local` with -n), which makes the variable a reference to the name assigned, whose array subscript bash evaluates where a value could run",
                "drop the -n",
            ),
            Place::Integer => (
                "follows a `declare -i` (or `typeset`, `local`, `export`, `readonly` with -i), after which bash evaluates what is assigned as arithmetic where a value could run",
                "drop the -i",
            ),
            _ => return None,
        })
    }
}
