//! Which parts of a rendered template came from secrets.
//!
//! A template is rendered twice, once with the real values and once for
//! display (secrets as `***`), while the formatter notes every value it
//! writes, in order. A value whose display form differs from its real form
//! was made from a secret (`{{ api_key | upper }}`, `{{ creds }}`), whatever
//! its length: its real text is masked in the output of the step that used
//! it. Nothing is searched for in the command text, so a literal that happens
//! to equal a short secret is left alone.

use std::cell::RefCell;

use minijinja::value::Value;

use super::{find_words, Kind, Renderer, Secrets, TemplateError, MASK, SHORT};
use crate::transport::OUTPUT_LIMIT;

thread_local! {
    /// The values written by the render under way, when one is traced.
    static WRITTEN: RefCell<Option<Vec<String>>> = const { RefCell::new(None) };
}

/// Called by the formatter for every value it writes.
pub(super) fn note(value: &Value) {
    WRITTEN.with(|written| {
        if let Some(list) = written.borrow_mut().as_mut() {
            list.push(value.to_string());
        }
    });
}

impl Renderer {
    /// Renders `source` and returns the text with the values written, in order.
    fn render_traced(
        &self,
        source: &str,
        kind: Kind,
        vars: &serde_json::Map<String, serde_json::Value>,
        shown: bool,
    ) -> Result<(String, Vec<String>), TemplateError> {
        let previous = WRITTEN.with(|w| w.replace(Some(Vec::new())));
        let text = self.render_in(source, kind, vars, shown);
        let written = WRITTEN.with(|w| w.replace(previous)).unwrap_or_default();
        text.map(|text| (text, written))
    }

    /// The real texts of the values of `source` that were made from
    /// secrets, for masking what the command that used them prints. `vars`
    /// are a host's variables, `shown` the same as herd shows them.
    pub fn secret_uses(
        &self,
        source: &str,
        kind: Kind,
        vars: &serde_json::Map<String, serde_json::Value>,
        shown: &serde_json::Map<String, serde_json::Value>,
    ) -> Vec<String> {
        let Ok((_, real)) = self.render_traced(source, kind, vars, false) else {
            return Vec::new();
        };
        let mut uses: Vec<String> = match self.render_traced(source, kind, shown, true) {
            Ok((_, display)) if display.len() == real.len() => real
                .into_iter()
                .zip(display)
                .filter(|(real, display)| real != display)
                .map(|(real, _)| real)
                .collect(),
            // The values do not line up (a secret steered a loop or a
            // condition), or the display rendering failed: every value not
            // seen in the display rendering counts as secret.
            Ok((text, display)) => real
                .into_iter()
                .filter(|value| !display.contains(value) && !text.contains(value.as_str()))
                .collect(),
            Err(_) => real,
        };
        uses.retain(|value| !value.is_empty() && value != MASK);
        uses
    }
}

impl Secrets {
    /// Masks `text`, the output of a command: every recorded secret of three
    /// characters or more wherever it appears, and `uses` (the values that
    /// command was given made from secrets, see [`Renderer::secret_uses`]),
    /// each also in its shell-quoted forms. A shorter secret or use (a PIN)
    /// is masked as a whole word only.
    pub fn mask_used(&self, text: &str, uses: &[String]) -> String {
        let Some((long, short)) = self.forms(uses) else {
            return text.to_string();
        };
        let masked = long.iter().fold(text.to_string(), |acc, secret| {
            acc.replace(secret.as_str(), MASK)
        });
        short.iter().fold(masked, |acc, secret| {
            let mut out = String::with_capacity(acc.len());
            let mut last = 0;
            for at in find_words(&acc, secret) {
                out.push_str(&acc[last..at]);
                out.push_str(MASK);
                last = at + secret.len();
            }
            out.push_str(&acc[last..]);
            out
        })
    }

    /// `text` masked (see [`Secrets::mask_used`]) and then cut, so no secret
    /// is split before it is masked. Where the cut leaves a piece of a secret
    /// at its edge (the start of a secret, three characters or more, ending
    /// what is kept; or its end starting a tail), that piece is masked too:
    /// the rest of the secret is gone, so the piece alone cannot be found.
    pub fn mask_cut(&self, text: &str, uses: &[String], cut: Cut) -> String {
        let masked = self.mask_used(text, uses);
        let count = masked.chars().count();
        let (kept, at_end) = match cut {
            Cut::Ended => (masked, true),
            Cut::Head(keep) if count > keep => (masked.chars().take(keep).collect(), true),
            Cut::Tail(keep) if count > keep => (masked.chars().skip(count - keep).collect(), false),
            Cut::Head(_) | Cut::Tail(_) => return masked,
        };
        let Some((long, _)) = self.forms(uses) else {
            return kept;
        };
        mask_edge(&kept, &long, at_end)
    }

    /// A step's name as herd prints it: every secret masked. A name cut
    /// for display (a command's first line, ending in `…`) may end in a
    /// piece of a secret: that piece is masked too (see [`Secrets::mask_cut`]).
    pub fn mask_name(&self, name: &str) -> String {
        match name.strip_suffix('…') {
            Some(head) => format!("{}…", self.mask_cut(head, &[], Cut::Ended)),
            None => self.mask(name),
        }
    }

    /// The texts to mask: those masked wherever they appear (each secret of
    /// three characters or more and each use, as is and shell-quoted),
    /// longest first, so a secret that contains another is masked whole;
    /// and the shorter ones, masked as words.
    fn forms(&self, uses: &[String]) -> Option<(Vec<String>, Vec<String>)> {
        let set = self.0.lock().ok()?;
        let mut long: Vec<String> = Vec::new();
        let mut short: Vec<String> = Vec::new();
        let all = set.iter().filter(|s| s.chars().count() >= SHORT);
        for secret in all.chain(uses.iter()) {
            if secret.chars().count() >= SHORT {
                // As is, and quoted once or twice (under `become` a command
                // is quoted again).
                let once = secret.replace('\'', r"'\''");
                let twice = once.replace('\'', r"'\''");
                long.extend([secret.clone(), once, twice]);
            } else if !secret.is_empty() {
                short.push(secret.clone());
            }
        }
        long.sort_by_key(|v| std::cmp::Reverse(v.len()));
        long.dedup();
        Some((long, short))
    }
}

/// How the output of one command (or reload stage) is masked: every
/// secret, and the values it was given made from secrets.
#[derive(Debug, Clone, Default)]
pub struct OutputMask {
    pub secrets: Secrets,
    /// See [`Renderer::secret_uses`].
    pub uses: Vec<String>,
}

impl OutputMask {
    /// Whether `text` holds a secret or a value made from one (it would be
    /// masked).
    pub fn holds_secret(&self, text: &str) -> bool {
        self.secrets.mask_used(text, &self.uses) != text
    }

    /// `text` masked, then cut (see [`Secrets::mask_cut`]).
    pub fn cut(&self, text: &str, cut: Cut) -> String {
        self.secrets.mask_cut(text, &self.uses, cut)
    }

    /// One stream of a command's output, masked. Past its limit the
    /// transport dropped the rest: a piece of a secret may end it.
    pub fn output(&self, text: &str) -> String {
        let cut = if text.len() >= OUTPUT_LIMIT {
            Cut::Ended
        } else {
            Cut::Head(usize::MAX)
        };
        self.cut(text, cut)
    }
}

/// Where herd cuts a text that may hold a secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cut {
    /// Its end was cut off already (output beyond a limit was dropped).
    Ended,
    /// The first this many characters are kept.
    Head(usize),
    /// The last this many characters are kept.
    Tail(usize),
}

/// `text` with the longest piece of one of `secrets` at its cut edge
/// masked: at its end (`at_end`) a proper start of a secret, else at its
/// start a proper end of one; a piece is three characters or more.
fn mask_edge(text: &str, secrets: &[String], at_end: bool) -> String {
    let mut piece = 0;
    for secret in secrets {
        // Each proper split of the secret, as (start, end).
        for (at, _) in secret.char_indices().skip(1) {
            let (head, tail) = secret.split_at(at);
            let part = if at_end { head } else { tail };
            let fits = if at_end {
                text.ends_with(part)
            } else {
                text.starts_with(part)
            };
            let found = (fits && part.chars().count() >= SHORT).then_some(part.len());
            piece = piece.max(found.unwrap_or(0));
        }
    }
    match (piece, at_end) {
        (0, _) => text.to_string(),
        (len, true) => format!("{}{MASK}", &text[..text.len() - len]),
        (len, false) => format!("{MASK}{}", &text[len..]),
    }
}

/// How a secret value is shown: a mapping or list keeps its shape, with
/// every leaf `***`, so `{{ creds.user }}` still renders.
pub fn masked_value(value: &serde_json::Value) -> serde_json::Value {
    match value {
        serde_json::Value::Object(map) => serde_json::Value::Object(
            map.iter()
                .map(|(key, value)| (key.clone(), masked_value(value)))
                .collect(),
        ),
        serde_json::Value::Array(items) => {
            serde_json::Value::Array(items.iter().map(masked_value).collect())
        }
        _ => serde_json::Value::String(MASK.to_string()),
    }
}

/// The texts a secret value's leaves render as, to be masked in output:
/// strings and numbers as templates write them, booleans as templates write
/// them (`True`) and as YAML, JSON and shells do (`true`).
pub fn leaf_texts(value: &serde_json::Value) -> Vec<String> {
    match value {
        serde_json::Value::Object(map) => map.values().flat_map(leaf_texts).collect(),
        serde_json::Value::Array(items) => items.iter().flat_map(leaf_texts).collect(),
        serde_json::Value::Null => Vec::new(),
        serde_json::Value::Bool(flag) => {
            let rendered = Value::from(*flag).to_string();
            let lower = flag.to_string();
            if rendered == lower {
                vec![rendered]
            } else {
                vec![rendered, lower]
            }
        }
        other => vec![Value::from_serialize(other).to_string()],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn vars(value: serde_json::Value) -> serde_json::Map<String, serde_json::Value> {
        value.as_object().cloned().unwrap()
    }

    #[test]
    fn a_value_made_from_a_secret_is_a_use_and_a_literal_is_not() {
        let renderer = Renderer::new();
        let real = vars(json!({"api_key": "Sup3r'Secret", "pin": "7", "who": "bob"}));
        let shown = vars(json!({"api_key": MASK, "pin": MASK, "who": "bob"}));
        let uses = renderer.secret_uses(
            "echo {{ api_key | upper }} {{ who }} p={{ pin }} pinword=7",
            Kind::Shell,
            &real,
            &shown,
        );
        assert_eq!(uses, vec!["SUP3R'SECRET".to_string(), "7".to_string()]);
    }

    #[test]
    fn a_mapping_secret_keeps_its_shape_and_every_leaf_is_a_use() {
        let renderer = Renderer::new();
        let creds = json!({"user": "bob", "pass": "hunter22", "n": 9});
        let real = vars(json!({"creds": creds, "flag": true}));
        let shown =
            vars(json!({"creds": masked_value(&creds), "flag": masked_value(&json!(true))}));
        let source = "echo pass={{ creds.pass }} n={{ creds.n }} flag={{ flag }} all={{ creds }}";
        let display = renderer.render_shown(source, Kind::Shell, &shown).unwrap();
        assert_eq!(
            display,
            r#"echo pass='***' n='***' flag='***' all='{"n": "***", "pass": "***", "user": "***"}'"#
        );
        let uses = renderer.secret_uses(source, Kind::Shell, &real, &shown);
        // minijinja writes a boolean as Python does.
        assert_eq!(uses[..3], ["hunter22", "9", "True"]);
        assert!(uses[3].contains("hunter22"), "{uses:?}");
        let mut leaves = leaf_texts(&creds);
        leaves.sort();
        assert_eq!(leaves, ["9", "bob", "hunter22"]);
        assert_eq!(leaf_texts(&json!(true)), ["True", "true"]);
    }

    #[test]
    fn values_that_do_not_line_up_count_as_secret_unless_shown() {
        let renderer = Renderer::new();
        let real = vars(json!({"items": ["a1", "b2"], "who": "bob"}));
        let shown = vars(json!({"items": MASK, "who": "bob"}));
        let uses = renderer.secret_uses(
            "{% for i in items %}{{ i }} {% endfor %}{{ who }}",
            Kind::Shell,
            &real,
            &shown,
        );
        assert_eq!(uses, ["a1", "b2"]);
    }

    #[test]
    fn a_cut_masks_first_and_masks_a_piece_of_a_secret_left_at_its_edge() {
        let secrets = Secrets::default();
        secrets.record("S3cr3tToken");
        let body = format!("{}S3cr3tToken tail", "x".repeat(110));
        // Cut after masking: the secret is never split.
        let kept = secrets.mask_cut(&body, &[], Cut::Head(115));
        assert_eq!(kept, format!("{}*** t", "x".repeat(110)));
        // Output cut off by a limit in the middle of a secret: the start
        // left at the end is masked, whatever was kept before it.
        let ended = secrets.mask_cut("log: S3cr3tT", &[], Cut::Ended);
        assert_eq!(ended, "log: ***");
        // The end of a secret starting a tail.
        let tail = secrets.mask_cut("S3cr3tToken", &[], Cut::Tail(7));
        assert_eq!(tail, "***");
        let tail = secrets.mask_cut("xx 3cr3tToken and more", &[], Cut::Tail(19));
        assert_eq!(tail, "*** and more");
        // Pieces under three characters, and texts that were not cut, are left.
        assert_eq!(secrets.mask_cut("log: S3", &[], Cut::Ended), "log: S3");
        assert_eq!(secrets.mask_cut("S3cr3", &[], Cut::Head(10)), "S3cr3");
        assert_eq!(
            secrets.mask_cut("xx S3cr3 and", &[], Cut::Head(6)),
            "xx ***"
        );
        // Its quoted forms and uses too, whatever their length.
        secrets.record("it's-secret");
        assert_eq!(
            secrets.mask_cut("echo 'it'\\''s-se", &[], Cut::Ended),
            "echo '***"
        );
        let uses = ["PIN1234".to_string()];
        assert_eq!(secrets.mask_cut("pin PIN12", &uses, Cut::Ended), "pin ***");
        assert_eq!(secrets.mask_cut("pin PIN12", &[], Cut::Ended), "pin PIN12");
    }
}
