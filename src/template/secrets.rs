//! Secret values, recorded as templates read them, so what hosts print can be masked.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

/// What a masked value prints as.
pub const MASK: &str = "***";

/// Secret values (read from the controller's environment, or held in a
/// variable named in `herd_secret_vars`), to be masked in what hosts say.
///
/// What herd prints itself (`herd plan`, `herd hosts --vars`) is masked where
/// the value is used instead: it is rendered a second time with every secret
/// standing in as `***` (see [`Renderer::render_shown`]). Output from a host
/// is searched: a secret of three characters or more is masked wherever it
/// appears, also in its shell-quoted forms; and each command's output masks
/// what that command was given made from secrets, whatever its length (see
/// [`Renderer::secret_uses`] and [`Secrets::mask_used`]). A template's error
/// may quote a value: a shorter secret is masked there too where it is quoted
/// or is a number of its own (see [`Secrets::mask_message`]).
#[derive(Debug, Clone, Default)]
pub struct Secrets(pub(super) Arc<Mutex<BTreeSet<String>>>);

/// Below this length a secret is masked only where it was used.
pub(super) const SHORT: usize = 3;

impl Secrets {
    /// Marks `value` as secret: from now on every output masks it.
    pub fn record(&self, value: &str) {
        if !value.is_empty() {
            if let Ok(mut set) = self.0.lock() {
                set.insert(value.to_string());
            }
        }
    }

    /// Replaces every secret value in `text` with `***`.
    pub fn mask(&self, text: &str) -> String {
        self.mask_used(text, &[])
    }

    /// Masks `text`, a message that may quote a value (why a template
    /// failed): every secret as [`Secrets::mask`] does, and one shorter than
    /// three characters where the message quotes it (`'ab'`, `"ab"`,
    /// `` `ab` ``) or, made of digits, where it stands as a number of its own.
    pub fn mask_message(&self, text: &str) -> String {
        let masked = self.mask(text);
        let short: Vec<String> = match self.0.lock() {
            Ok(set) => set
                .iter()
                .filter(|s| s.chars().count() < SHORT)
                .cloned()
                .collect(),
            Err(_) => return masked,
        };
        short.iter().fold(masked, |acc, secret| {
            let quoted = ['\'', '"', '`'].iter().fold(acc, |acc, quote| {
                acc.replace(
                    &format!("{quote}{secret}{quote}"),
                    &format!("{quote}{MASK}{quote}"),
                )
            });
            if !secret.chars().all(|c| c.is_ascii_digit()) {
                return quoted;
            }
            let mut out = String::with_capacity(quoted.len());
            let mut last = 0;
            for at in find_words(&quoted, secret) {
                // `1.5` holds no number `1` of its own.
                let joined = |c: Option<char>| c == Some('.');
                if joined(quoted[..at].chars().next_back())
                    || joined(quoted[at + secret.len()..].chars().next())
                {
                    continue;
                }
                out.push_str(&quoted[last..at]);
                out.push_str(MASK);
                last = at + secret.len();
            }
            out.push_str(&quoted[last..]);
            out
        })
    }
}

/// Where `word` appears in `text` with no letter or digit right before or after.
pub(super) fn find_words(text: &str, word: &str) -> Vec<usize> {
    let is_word = |c: Option<char>| c.is_some_and(char::is_alphanumeric);
    text.match_indices(word)
        .filter(|(at, _)| {
            !is_word(text[..*at].chars().next_back())
                && !is_word(text[at + word.len()..].chars().next())
        })
        .map(|(at, _)| at)
        .collect()
}
