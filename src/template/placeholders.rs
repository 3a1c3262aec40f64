//! Placeholders that stand for a shell render's values until the rendered
//! text has been checked, and then take the quoted values.

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};

use super::{shell_context, TemplateError};
use crate::shell::quote as shell_quote;

thread_local! {
    /// The values of the shell render under way on this thread.
    pub(super) static PLACEHOLDERS: RefCell<Option<Placeholders>> = const { RefCell::new(None) };
}

/// The values of one shell render.
///
/// The quoting of a value protects it only where the shell reads words, and
/// only the rendered text tells where that is (tags, loops, macros and
/// whitespace control all move text around). So each value is first
/// written as a placeholder, `\x01herd<nonce>:<n>\x02`, that the shell lexer
/// reads as part of a plain word; the rendered text is lexed with every
/// placeholder in it, and only then are the quoted values put in. The nonce
/// is new for every render, so no text of the template can pass for a value.
pub(super) struct Placeholders {
    prefix: String,
    /// Each value: as given, and quoted for the shell.
    values: Vec<(String, String)>,
}

const PLACEHOLDER_END: char = '\u{2}';

/// Why a rendered command holds a broken placeholder.
const CHANGED: &str = "a `{% filter %}` block changed a value herd quotes: \
                       apply the filter to the value instead (`{{ x | upper }}`)";

impl Placeholders {
    pub(super) fn new() -> Placeholders {
        Placeholders {
            prefix: format!("\u{1}herd{:016x}{:016x}:", nonce(), nonce()),
            values: Vec::new(),
        }
    }

    /// Remembers a value and returns its placeholder. A placeholder inside
    /// the value (a macro's output run through a filter) stands for the
    /// value it was made for.
    pub(super) fn add(&mut self, text: &str) -> Result<String, minijinja::Error> {
        if self.leftover(text, false) {
            return Err(minijinja::Error::new(
                minijinja::ErrorKind::InvalidOperation,
                CHANGED,
            ));
        }
        let original = self.substitute(text, false);
        let quoted = shell_quote(&original);
        self.values.push((original, quoted));
        Ok(format!(
            "{}{}{PLACEHOLDER_END}",
            self.prefix,
            self.values.len() - 1
        ))
    }

    /// Whether `text`, outside its whole placeholders, holds a piece of one:
    /// a filter (`{% filter upper %}`, `| truncate`) changed a placeholder,
    /// and the value it stood for would be lost or garbled. With `marks`,
    /// the placeholder's delimiters count too (in rendered text; a value may
    /// hold such bytes as data).
    fn leftover(&self, text: &str, marks: bool) -> bool {
        let hex = &self.prefix[5..self.prefix.len() - 1];
        let pieces = [&hex[..16], &hex[16..]];
        let mut rest = text;
        loop {
            let (segment, tail) = match rest.find(&self.prefix) {
                Some(at) => (&rest[..at], Some(&rest[at + self.prefix.len()..])),
                None => (rest, None),
            };
            let lower = segment.to_ascii_lowercase();
            if pieces.iter().any(|piece| lower.contains(piece))
                || (marks && segment.contains(['\u{1}', PLACEHOLDER_END]))
            {
                return true;
            }
            match tail {
                Some(tail) => {
                    rest = tail
                        .split_once(PLACEHOLDER_END)
                        .map_or("", |(_, after)| after);
                }
                None => return false,
            }
        }
    }

    /// `text` with each placeholder replaced by its value, as given or
    /// quoted. One pass: a value that looks like a placeholder stays text.
    fn substitute(&self, text: &str, quoted: bool) -> String {
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(at) = rest.find(&self.prefix) {
            out.push_str(&rest[..at]);
            let after = &rest[at + self.prefix.len()..];
            let value = after.split_once(PLACEHOLDER_END).and_then(|(index, tail)| {
                let (original, shell) = self.values.get(index.parse::<usize>().ok()?)?;
                Some((if quoted { shell } else { original }, tail))
            });
            match value {
                Some((value, tail)) => {
                    out.push_str(value);
                    rest = tail;
                }
                None => {
                    out.push_str(&self.prefix);
                    rest = after;
                }
            }
        }
        out.push_str(rest);
        out
    }

    /// The rendered command with its values quoted in, if every value sits
    /// where the shell reads words.
    pub(super) fn fill(&self, rendered: &str) -> Result<String, TemplateError> {
        if self.values.is_empty() {
            return Ok(rendered.to_string());
        }
        if self.leftover(rendered, true) {
            return Err(TemplateError::Invalid {
                message: CHANGED.to_string(),
            });
        }
        if let Some((_, place)) = shell_context::find_misplaced(rendered, &self.prefix) {
            return Err(TemplateError::Unprotected { place });
        }
        Ok(self.substitute(rendered, true))
    }
}

/// 64 bits no template can guess.
fn nonce() -> u64 {
    use std::hash::BuildHasher;
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    std::collections::hash_map::RandomState::new().hash_one(COUNTER.fetch_add(1, Ordering::Relaxed))
}
