//! What the lexer knows of unquoted text: command words, `case` patterns,
//! and the words after which bash evaluates a value.

/// What the lexer knows of unquoted text: enough to tell which `)` ends a
/// `$(...)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Words {
    /// Parentheses opened in this text and not closed yet.
    pub(super) parens: usize,
    /// The `case` commands open here, innermost last.
    pub(super) cases: Vec<Case>,
    /// At the start of a command, where `case` and `esac` are reserved words.
    pub(super) command: bool,
    /// In bash's `[[ ... ]]`.
    pub(super) test: bool,
    /// In the arguments of `let`.
    pub(super) arithmetic: bool,
    /// In the arguments of `declare`, `typeset`, `local`, `export` or
    /// `readonly`.
    pub(super) declaring: bool,
    /// In the arguments of `unset`, `read`, `mapfile`, `readarray` or
    /// `getopts`.
    pub(super) names: bool,
    /// In a command whose option takes a variable name: `-v` of `printf`,
    /// `test` and `[`, `-p` of `wait`.
    pub(super) name_option: Option<u8>,
    /// Words before the command's name: after `command` or `builtin` (and
    /// their options) or an assignment (`X=1 declare ...`), the next word
    /// still names the command.
    pub(super) prefix: bool,
    /// The next word is a redirection's target (`< FILE`, `2> FILE`), not
    /// an argument.
    pub(super) redirect: bool,
    /// In the arguments of `declare`, `typeset` or `local`, whose `-n`
    /// makes a name reference (`export -n` only un-exports).
    pub(super) nameref: bool,
    /// The next word is the name after such a `-v`.
    pub(super) name_next: bool,
}

impl Words {
    pub(super) fn new() -> Words {
        Words {
            parens: 0,
            cases: Vec::new(),
            command: true,
            test: false,
            arithmetic: false,
            declaring: false,
            names: false,
            name_option: None,
            name_next: false,
            prefix: false,
            redirect: false,
            nameref: false,
        }
    }

    /// A command ends (`;`, `&`, `|`, newline): the next word starts one.
    pub(super) fn end_command(&mut self) {
        self.command = true;
        self.arithmetic = false;
        self.declaring = false;
        self.names = false;
        self.name_option = None;
        self.name_next = false;
        self.prefix = false;
        self.redirect = false;
        self.nameref = false;
    }

    /// Where a value at the start of a word is a name bash may evaluate.
    pub(super) fn takes_name(&self) -> bool {
        self.names || self.declaring || self.name_next
    }

    /// A word that is not a reserved word starts (or goes on) here.
    pub(super) fn word(&mut self) {
        if let Some(Case::Head { subject }) = self.cases.last_mut() {
            *subject = true;
        }
        self.command = false;
        self.name_next = false;
        self.redirect = false;
    }

    /// A bare word of letters, as a whole: `case`, `in` and `esac` move a
    /// `case` command on.
    pub(super) fn bare_word(&mut self, word: &[u8]) {
        self.name_next = false;
        self.redirect = false;
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
                    && matches!(word, b"command" | b"builtin" | b"time" | b"coproc")
                {
                    // `command declare ...` is `declare ...` (and `time -p
                    // declare`, `coproc declare`).
                    self.prefix = true;
                } else if self.command
                    && matches!(
                        word,
                        b"unset" | b"read" | b"mapfile" | b"readarray" | b"getopts"
                    )
                {
                    self.names = true;
                    self.command = false;
                } else if self.command && matches!(word, b"printf" | b"test") {
                    self.name_option = Some(b'v');
                    self.command = false;
                } else if self.command && word == b"wait" {
                    self.name_option = Some(b'p');
                    self.command = false;
                } else if self.command
                    && matches!(
                        word,
                        b"declare" | b"typeset" | b"local" | b"export" | b"readonly"
                    )
                {
                    self.declaring = true;
                    self.nameref = matches!(word, b"declare" | b"typeset" | b"local");
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

    pub(super) fn in_pattern(&self) -> bool {
        self.cases.last() == Some(&Case::Pattern)
    }
}

/// Where the lexer is in a `case WORD in PATTERN) COMMANDS ;; ... esac`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Case {
    /// Before `in`; whether the subject word has been read.
    Head { subject: bool },
    /// In a pattern list, where `)` ends the patterns (not a `$(`).
    Pattern,
    /// In the commands of a pattern, up to `;;` or `esac`.
    Body,
}
