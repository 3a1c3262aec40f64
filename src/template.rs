//! Jinja templates over a host's variables, shell-safe by default.
//!
//! Two kinds of fields take templates. Shell fields (`run`, `cwd`, `preflight`,
//! rollback commands) quote every interpolated value for `/bin/sh`, so a host
//! variable holding `; rm -rf /` reaches the remote shell as data; `{{ x | raw }}`
//! opts out (Jinja's `| safe` and `| e` are refused rather than being a
//! second, quieter way out; so is a `{% filter %}` block that changes a value). Quoting makes a value one shell word, so a value may only land
//! where the shell reads words: `shell_context` checks that, on the template's
//! text (to point at the `{{ }}`) and on every rendered command (which is
//! what counts; see `Placeholders`). Plain
//! fields (URLs, upload paths, variables) are not quoted.
//! `env.NAME` reads the controller's environment; such values are secrets:
//! they are recorded so what hosts print can be masked, and a second,
//! display-only rendering shows them (and secret variables) as `***`.

mod mask;
mod shell_context;

pub use mask::{leaf_texts, masked_value, Cut, OutputMask};

pub use shell_context::{find_unprotected, Place};

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use minijinja::value::{Enumerator, Object, Value};
use minijinja::{AutoEscape, Environment, UndefinedBehavior};

/// Whether rendered values are quoted for the shell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Shell,
    Plain,
}

/// Why a template did not render.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("undefined variable `{name}`")]
    Undefined { name: String },
    #[error("template error: {message}")]
    Invalid { message: String },
    /// The rendered command puts a value where quoting does not protect it.
    #[error("{}", place.rendered_message())]
    Unprotected { place: Place },
}

impl TemplateError {
    /// The text to look for in the user's file to point at the fault.
    pub fn needle(&self) -> Option<&str> {
        match self {
            TemplateError::Undefined { name } => Some(name),
            TemplateError::Invalid { .. } | TemplateError::Unprotected { .. } => None,
        }
    }
}

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
/// [`Renderer::secret_uses`] and [`Secrets::mask_used`]).
#[derive(Debug, Clone, Default)]
pub struct Secrets(Arc<Mutex<BTreeSet<String>>>);

/// Below this length a secret is masked only where it was used.
const SHORT: usize = 3;

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
}

/// Where `word` appears in `text` with no letter or digit right before or after.
fn find_words(text: &str, word: &str) -> Vec<usize> {
    let is_word = |c: Option<char>| c.is_some_and(char::is_alphanumeric);
    text.match_indices(word)
        .filter(|(at, _)| {
            !is_word(text[..*at].chars().next_back())
                && !is_word(text[at + word.len()..].chars().next())
        })
        .map(|(at, _)| at)
        .collect()
}

/// The controller's environment as seen by templates (`env.NAME`).
#[derive(Debug)]
struct ControllerEnv {
    secrets: Secrets,
    /// Rendering for display: every value is `***`.
    shown: bool,
}

impl Object for ControllerEnv {
    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        let value = std::env::var(key.as_str()?).ok()?;
        if self.shown {
            return Some(Value::from(MASK));
        }
        self.secrets.record(&value);
        Some(Value::from(value))
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        Enumerator::NonEnumerable
    }
}

/// Renders templates; one per run, shared by every host.
pub struct Renderer {
    env: Environment<'static>,
    secrets: Secrets,
}

impl Default for Renderer {
    fn default() -> Self {
        Self::new()
    }
}

impl Renderer {
    pub fn new() -> Self {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.set_auto_escape_callback(|name| {
            if name.ends_with(".sh") {
                AutoEscape::Custom("shell")
            } else {
                AutoEscape::None
            }
        });
        // Whether a value is quoted depends on the field, not on the
        // template: `{% autoescape false %}` does not turn quoting off.
        // A value is written as a placeholder, quoted and put in its place
        // once the rendered text has been checked (see `Placeholders`).
        env.set_formatter(|out, state, value| {
            mask::note(value);
            if state.name().ends_with(".sh") && !value.is_safe() {
                let text = value.to_string();
                let token = PLACEHOLDERS.with(|p| p.borrow_mut().as_mut().map(|p| p.add(&text)));
                match token {
                    Some(token) => out.write_str(&token?).map_err(minijinja::Error::from),
                    None => Err(minijinja::Error::new(
                        minijinja::ErrorKind::InvalidOperation,
                        "a shell value outside of a render",
                    )),
                }
            } else {
                minijinja::escape_formatter(out, state, value)
            }
        });
        env.add_filter("raw", |value: Value| {
            Value::from_safe_string(value.to_string())
        });
        // Jinja's `safe` would skip quoting as `raw` does, unseen by anyone
        // reading the playbook for `raw`: herd has one way out, not two.
        env.add_filter("safe", |_: Value| -> Result<Value, minijinja::Error> {
            Err(minijinja::Error::new(
                minijinja::ErrorKind::InvalidOperation,
                "`| safe` does not turn off herd's shell quoting: write `| raw` to insert a value unquoted",
            ))
        });
        // Jinja's `escape` escapes HTML and marks its output safe, which
        // would skip herd's quoting: in a shell field it is refused.
        for name in ["e", "escape"] {
            env.add_filter(name, |state: &minijinja::State, value: Value| {
                if state.name().ends_with(".sh") {
                    return Err(minijinja::Error::new(
                        minijinja::ErrorKind::InvalidOperation,
                        "herd quotes values for you; `| e` escapes HTML: remove it",
                    ));
                }
                minijinja::filters::escape(state, &value)
            });
        }
        Renderer {
            env,
            secrets: Secrets::default(),
        }
    }

    pub fn secrets(&self) -> &Secrets {
        &self.secrets
    }

    /// Renders `source` with the variables of `vars` (a map) plus `env`.
    pub fn render(
        &self,
        source: &str,
        kind: Kind,
        vars: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<String, TemplateError> {
        self.render_in(source, kind, vars, false)
    }

    /// Renders `source` for display: `shown` are a host's variables with
    /// secrets as `***` (see `PlannedHost::shown_vars`), and every `env.NAME`
    /// is `***`. The text is what [`Renderer::render`] gives, minus the
    /// secrets, in whatever form (quoted, sliced, joined) they were used.
    pub fn render_shown(
        &self,
        source: &str,
        kind: Kind,
        shown: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<String, TemplateError> {
        self.render_in(source, kind, shown, true)
    }

    fn render_in(
        &self,
        source: &str,
        kind: Kind,
        vars: &serde_json::Map<String, serde_json::Value>,
        shown: bool,
    ) -> Result<String, TemplateError> {
        if !source.contains("{{") && !source.contains("{%") {
            return Ok(source.to_string());
        }
        let name = match kind {
            Kind::Shell => "field.sh",
            Kind::Plain => "field.txt",
        };
        let template = self
            .env
            .template_from_named_str(name, source)
            .map_err(|e| TemplateError::Invalid {
                message: describe(&e),
            })?;
        let context = self.context(vars, shown);
        if kind == Kind::Shell {
            PLACEHOLDERS.with(|p| *p.borrow_mut() = Some(Placeholders::new()));
        }
        let rendered = template.render(&context);
        let placeholders = PLACEHOLDERS.with(|p| p.borrow_mut().take());
        let rendered = rendered.map_err(|error| {
            if error.kind() == minijinja::ErrorKind::UndefinedError {
                let mut names: Vec<String> =
                    template.undeclared_variables(true).into_iter().collect();
                names.sort();
                if let Some(name) = names.into_iter().find(|n| !self.is_defined(n, vars)) {
                    return TemplateError::Undefined { name };
                }
            }
            TemplateError::Invalid {
                message: describe(&error),
            }
        })?;
        match placeholders {
            Some(placeholders) => placeholders.fill(&rendered),
            None => Ok(rendered),
        }
    }

    fn context(&self, vars: &serde_json::Map<String, serde_json::Value>, shown: bool) -> Value {
        let env = Value::from_object(ControllerEnv {
            secrets: self.secrets.clone(),
            shown,
        });
        let mut map: std::collections::BTreeMap<String, Value> = vars
            .iter()
            .map(|(k, v)| (k.clone(), Value::from_serialize(v)))
            .collect();
        map.insert("env".to_string(), env);
        Value::from(map)
    }

    /// Whether a dotted name (`a`, `a.b`, `env.X`) resolves in `vars`.
    fn is_defined(&self, dotted: &str, vars: &serde_json::Map<String, serde_json::Value>) -> bool {
        let mut parts = dotted.split('.');
        let Some(first) = parts.next() else {
            return true;
        };
        if first == "env" {
            return parts.next().is_none_or(|name| std::env::var(name).is_ok());
        }
        let mut current = match vars.get(first) {
            Some(value) => value,
            None => return false,
        };
        for part in parts {
            match current.get(part) {
                Some(next) => current = next,
                None => return false,
            }
        }
        true
    }
}

thread_local! {
    /// The values of the shell render under way on this thread.
    static PLACEHOLDERS: RefCell<Option<Placeholders>> = const { RefCell::new(None) };
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
struct Placeholders {
    prefix: String,
    /// Each value: as given, and quoted for the shell.
    values: Vec<(String, String)>,
}

const PLACEHOLDER_END: char = '\u{2}';

/// Why a rendered command holds a broken placeholder.
const CHANGED: &str = "a `{% filter %}` block changed a value herd quotes: \
                       apply the filter to the value instead (`{{ x | upper }}`)";

impl Placeholders {
    fn new() -> Placeholders {
        Placeholders {
            prefix: format!("\u{1}herd{:016x}{:016x}:", nonce(), nonce()),
            values: Vec::new(),
        }
    }

    /// Remembers a value and returns its placeholder. A placeholder inside
    /// the value (a macro's output run through a filter) stands for the
    /// value it was made for.
    fn add(&mut self, text: &str) -> Result<String, minijinja::Error> {
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
    fn fill(&self, rendered: &str) -> Result<String, TemplateError> {
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

fn describe(error: &minijinja::Error) -> String {
    match error.detail() {
        Some(detail) => detail.to_string(),
        None => error.kind().to_string(),
    }
}

/// Quotes `text` for a POSIX shell, leaving plainly safe words as they are.
pub fn shell_quote(text: &str) -> String {
    let safe = !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-./:=@%+,".contains(&b));
    if safe {
        text.to_string()
    } else {
        format!("'{}'", text.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn vars(value: serde_json::Value) -> serde_json::Map<String, serde_json::Value> {
        value.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn shell_fields_quote_interpolated_values() {
        let renderer = Renderer::new();
        let v = vars(json!({"dir": "/srv/my app", "evil": "; touch /tmp/x", "port": 8000}));
        assert_eq!(
            renderer
                .render("ls {{ dir }}/current", Kind::Shell, &v)
                .unwrap(),
            "ls '/srv/my app'/current"
        );
        assert_eq!(
            renderer.render("echo {{ evil }}", Kind::Shell, &v).unwrap(),
            "echo '; touch /tmp/x'"
        );
        assert_eq!(
            renderer.render("p={{ port }}", Kind::Shell, &v).unwrap(),
            "p=8000"
        );
        assert_eq!(
            renderer
                .render("{{ evil | raw }}", Kind::Shell, &v)
                .unwrap(),
            "; touch /tmp/x"
        );
    }

    /// Templates whose text looks fine but whose rendered command puts a
    /// value inside quotes, a comment or a here-document.
    const MOVED_BY_RENDERING: [(&str, Place); 8] = [
        (
            "{% if true %}\"{% else %}\"{% endif %}{{ y }}\"",
            Place::DoubleQuotes,
        ),
        (
            "{% for i in [1,2] %}{{ y }}\"{% endfor %}",
            Place::DoubleQuotes,
        ),
        (
            "echo \"$(case a in a) echo \"{{ y }}\";; esac)\"",
            Place::DoubleQuotes,
        ),
        (
            "{% macro q() %}\"{% endmacro %}echo {{ q() }}{{ y }}{{ q() }}",
            Place::DoubleQuotes,
        ),
        (
            "{% set q %}\"{% endset %}echo {{ q }}{{ y }}{{ q }}",
            Place::DoubleQuotes,
        ),
        (
            "echo a # note\n{%- if true %} {{ x }}{% endif %}",
            Place::Comment,
        ),
        (
            "cat <<EOF\nEOF\n{%- if true %} {{ y }}{% endif %}\nEOF",
            Place::HereDocument,
        ),
        ("cat <<EOF\nfoo\\\nEOF\n{{ y }}\nEOF", Place::HereDocument),
    ];

    #[test]
    fn the_rendered_command_is_what_is_checked() {
        let renderer = Renderer::new();
        let v = vars(json!({"y": "$(touch /tmp/pwn)", "x": "a\ntouch /tmp/pwn #"}));
        for (source, place) in MOVED_BY_RENDERING {
            assert_eq!(
                renderer.render(source, Kind::Shell, &v),
                Err(TemplateError::Unprotected { place }),
                "{source}"
            );
            assert_eq!(
                renderer.render_shown(source, Kind::Shell, &v),
                Err(TemplateError::Unprotected { place }),
                "{source}"
            );
        }
    }

    #[test]
    fn values_from_loops_macros_and_blocks_are_quoted_where_they_land() {
        let renderer = Renderer::new();
        let v = vars(json!({"y": "$(touch /tmp/pwn)", "q": "\"", "items": ["a b", "c"]}));
        for (source, expected) in [
            (
                "{% for i in items %}echo {{ i }};{% endfor %}",
                "echo 'a b';echo c;",
            ),
            (
                "{% macro e(v) %}echo {{ v }}{% endmacro %}{{ e(y) }}",
                "echo '$(touch /tmp/pwn)'",
            ),
            (
                "{% set s %}x={{ y }}{% endset %}{{ s }} && {{ s | raw }}",
                "x='$(touch /tmp/pwn)' && x='$(touch /tmp/pwn)'",
            ),
            // A block's output used as a value is quoted as a whole.
            (
                "{% set s %}{{ y }}!{% endset %}echo {{ s ~ '' }}",
                "echo '$(touch /tmp/pwn)!'",
            ),
            // A raw value is shell text: `q | raw` opens a quote, and so the
            // value after it is inside it.
            (
                "echo {{ q | raw }}{{ q | raw }} {{ y }}",
                "echo \"\" '$(touch /tmp/pwn)'",
            ),
            (
                "echo \"$(case a in a) echo {{ y }};; esac)\"",
                "echo \"$(case a in a) echo '$(touch /tmp/pwn)';; esac)\"",
            ),
        ] {
            assert_eq!(
                renderer.render(source, Kind::Shell, &v).as_deref(),
                Ok(expected),
                "{source}"
            );
        }
        assert_eq!(
            renderer.render("echo {{ q | raw }}{{ y }}{{ q | raw }}", Kind::Shell, &v),
            Err(TemplateError::Unprotected {
                place: Place::DoubleQuotes
            })
        );
        assert_eq!(
            renderer.render("echo \\{{ y }} ${{ y }}", Kind::Shell, &v),
            Err(TemplateError::Unprotected {
                place: Place::Escaped
            })
        );
    }

    #[test]
    fn filters_that_mark_their_output_safe_still_quote_values() {
        let renderer = Renderer::new();
        let v = vars(json!({"y": "$(touch /tmp/pwn)", "l": ["$(a)", "b"]}));
        for (source, expected) in [
            ("echo {{ l | join(' ') }}", "echo '$(a) b'"),
            (
                "echo {{ y | replace('a', 'b') }}",
                "echo '$(touch /tmp/pwn)'",
            ),
            ("echo {{ '%s' | format(y) }}", "echo '$(touch /tmp/pwn)'"),
        ] {
            assert_eq!(
                renderer.render(source, Kind::Shell, &v).as_deref(),
                Ok(expected),
                "{source}"
            );
        }
    }

    #[test]
    fn html_escaping_is_refused_in_shell_fields() {
        let renderer = Renderer::new();
        let v = vars(json!({"v": "$(touch /tmp/pwn)"}));
        for source in [
            "{% autoescape 'html' %}echo {{ v | e }}{% endautoescape %}",
            "{% autoescape 'html' %}echo {{ v | e | upper }}{% endautoescape %}",
            "echo {{ v | escape }}",
            "echo {{ v | e }}",
        ] {
            assert_eq!(
                renderer.render(source, Kind::Shell, &v),
                Err(TemplateError::Invalid {
                    message: "herd quotes values for you; `| e` escapes HTML: remove it".into()
                }),
                "{source}"
            );
        }
        assert_eq!(
            renderer.render("<b>{{ '<' | e }}</b>", Kind::Plain, &v),
            Ok("<b>&lt;</b>".to_string())
        );
    }

    #[test]
    fn a_filter_block_that_changes_a_value_is_refused() {
        let renderer = Renderer::new();
        let v = vars(json!({"v": "$(touch /tmp/pwn)", "w": "ok"}));
        for source in [
            "{% filter upper %}echo {{ v }}{% endfilter %}",
            "{% filter upper %}echo {{ w }}{% endfilter %}",
            "{% filter replace('herd', 'x') %}echo {{ w }}{% endfilter %}",
            "{% filter reverse %}echo {{ w }}{% endfilter %}",
            "{% macro m() %}{{ w }}{% endmacro %}echo {{ m() | upper }}",
        ] {
            let Err(TemplateError::Invalid { message }) = renderer.render(source, Kind::Shell, &v)
            else {
                panic!("{source} rendered");
            };
            assert!(
                message.starts_with("a `{% filter %}` block changed a value herd quotes"),
                "{source}: {message}"
            );
        }
        // A filter block over text alone, and a filter on the value, are fine.
        assert_eq!(
            renderer.render(
                "{% filter upper %}echo{% endfilter %} {{ v | upper }}",
                Kind::Shell,
                &v
            ),
            Ok("ECHO '$(TOUCH /TMP/PWN)'".to_string())
        );
    }

    #[test]
    fn a_value_cannot_pass_for_a_placeholder() {
        let renderer = Renderer::new();
        let mut placeholders = Placeholders::new();
        let forged = placeholders.add("\"").unwrap();
        let v = vars(json!({"a": forged, "b": "$(x)"}));
        assert_eq!(
            renderer
                .render("echo {{ a }} {{ b }}", Kind::Shell, &v)
                .unwrap(),
            format!("echo {} '$(x)'", shell_quote(&forged))
        );
        assert_eq!(
            placeholders.fill(&format!("echo \"{forged}\"")),
            Err(TemplateError::Unprotected {
                place: Place::DoubleQuotes
            })
        );
        assert_eq!(
            placeholders.fill(&format!("echo {forged}")).as_deref(),
            Ok("echo '\"'")
        );
    }

    #[test]
    fn safe_and_autoescape_do_not_turn_quoting_off() {
        let renderer = Renderer::new();
        let v = vars(json!({"evil": "; touch /tmp/x"}));
        let Err(TemplateError::Invalid { message }) =
            renderer.render("echo {{ evil | safe }}", Kind::Shell, &v)
        else {
            panic!("`| safe` rendered");
        };
        assert!(message.contains("write `| raw`"), "{message}");
        assert_eq!(
            renderer
                .render(
                    "{% autoescape false %}echo {{ evil }}{% endautoescape %}",
                    Kind::Shell,
                    &v
                )
                .unwrap(),
            "echo '; touch /tmp/x'"
        );
    }

    #[test]
    fn host_output_is_masked_in_every_form_a_secret_takes() {
        let secrets = Secrets::default();
        secrets.record("it's-secret");
        secrets.record("42");
        assert_eq!(
            secrets.mask("a it's-secret b 'it'\\''s-secret' c"),
            "a *** b '***' c"
        );
        // A short secret: only in the output of a command that used it, as a word.
        assert_eq!(secrets.mask("pin 42"), "pin 42");
        let uses = ["42".to_string()];
        assert_eq!(
            secrets.mask_used("pin 42, not 1425 nor x42", &uses),
            "pin ***, not 1425 nor x42"
        );
        // What a command was given made from a secret, whatever its form.
        let uses = ["IT'S-SECRET".to_string()];
        assert_eq!(
            secrets.mask_used("IT'S-SECRET 'IT'\\''S-SECRET'", &uses),
            "*** '***'"
        );
    }

    #[test]
    fn shown_renders_put_stars_where_environment_values_go() {
        std::env::set_var("HERD_TEST_SHOWN", "o'clock");
        let renderer = Renderer::new();
        let none = serde_json::Map::new();
        assert_eq!(
            renderer
                .render("echo {{ env.HERD_TEST_SHOWN }}", Kind::Shell, &none)
                .unwrap(),
            r"echo 'o'\''clock'"
        );
        assert_eq!(
            renderer
                .render_shown("echo {{ env.HERD_TEST_SHOWN }}", Kind::Shell, &none)
                .unwrap(),
            "echo '***'"
        );
    }

    #[test]
    fn plain_fields_are_not_quoted() {
        let renderer = Renderer::new();
        let v = vars(json!({"dir": "/srv/my app"}));
        assert_eq!(
            renderer.render("{{ dir }}/x", Kind::Plain, &v).unwrap(),
            "/srv/my app/x"
        );
    }

    #[test]
    fn single_quotes_survive_quoting() {
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote(""), "''");
    }

    #[test]
    fn undefined_variables_are_named() {
        let renderer = Renderer::new();
        let v = vars(json!({"app": {"dir": "/a"}}));
        assert_eq!(
            renderer.render("cd {{ app.dir }} && {{ relase }}", Kind::Shell, &v),
            Err(TemplateError::Undefined {
                name: "relase".into()
            })
        );
        assert_eq!(
            renderer.render("{{ app.nope }}", Kind::Shell, &v),
            Err(TemplateError::Undefined {
                name: "app.nope".into()
            })
        );
    }

    #[test]
    fn environment_values_are_secrets() {
        std::env::set_var("HERD_TEST_TOKEN", "s3cr3t-value");
        let renderer = Renderer::new();
        let out = renderer
            .render(
                "curl -H {{ env.HERD_TEST_TOKEN }}",
                Kind::Shell,
                &serde_json::Map::new(),
            )
            .unwrap();
        assert_eq!(out, "curl -H s3cr3t-value");
        assert_eq!(renderer.secrets().mask(&out), "curl -H ***");
        assert_eq!(
            renderer.render(
                "{{ env.HERD_TEST_MISSING_VAR }}",
                Kind::Shell,
                &serde_json::Map::new()
            ),
            Err(TemplateError::Undefined {
                name: "env.HERD_TEST_MISSING_VAR".into()
            })
        );
    }

    mod any_value {
        use super::*;
        use proptest::prelude::*;

        /// What `shell` prints for `command`: stdout and stderr.
        fn run(shell: &str, command: &str) -> (Vec<u8>, Vec<u8>) {
            let output = std::process::Command::new(shell)
                .args(["-c", command])
                .stdin(std::process::Stdio::null())
                .output()
                .unwrap();
            (output.stdout, output.stderr)
        }

        fn sh(command: &str) -> Vec<u8> {
            run("/bin/sh", command).0
        }

        /// Bits of shell and template text, values among them.
        fn fragment() -> impl Strategy<Value = &'static str> {
            prop::sample::select(vec![
                " ",
                "\n",
                "\"",
                "'",
                "`",
                "$(",
                ")",
                "#",
                "\\",
                "$",
                ";",
                "echo ",
                "printf %s ",
                "case a in a) ",
                ";; esac",
                "cat <<EOF\n",
                "\nEOF\n",
                "{{ v }}",
                "{{ v }}",
                "{{ r | raw }}",
                "{% if true %}\"{% endif %}",
                "{%- if true %}",
                "{% endif -%}",
                "{% for i in [1, 2] %}",
                "{% endfor %}",
                "$((",
                "((",
                "${a:-",
                "}",
                "$'",
                "\"${x-'",
                "\\\n",
                "<\\\n<EOF\n",
                "[[ ",
                " -eq 1 ]]",
                "let n=",
                "a[",
                "]=1",
                "declare -i n=",
                "x=$(true\n",
                "{% filter upper %}",
                "{% endfilter %}",
            ])
        }

        /// Templates whose rendered command dash or bash would read so that
        /// the quoted value runs: herd refuses them.
        #[test]
        fn what_dash_or_bash_would_run_is_refused() {
            let payload = "a[$(printf P\"\"WNED >&2)]";
            let v = vars(json!({ "v": payload }));
            for template in [
                "cat <<EOF; x=$(true\nEOF\n)\n{{ v }}\nEOF",
                "echo $'\\'' {{ v }} '",
                "((echo ') {{ v }}'))",
                "unset x; echo \"${x-'}\"'}\"{{ v }}'",
                "cat <\\\n<EOF\n{{ v }}\nEOF",
                "echo $\\\n(( {{ v }} )) || true",
                "[[ {{ v }} -eq 1 ]]",
                "let n={{ v }}",
                "a[{{ v }}]=1",
                "declare -i n={{ v }}",
                "typeset -i n; n={{ v }}",
                "a=(1); unset {{ v }}",
                "printf -v {{ v }} %s x",
                "read {{ v }} <<EOF\nx\nEOF",
                "test -v {{ v }}",
            ] {
                // The command as it was rendered before herd refused it.
                let command = template.replace("{{ v }}", &shell_quote(payload));
                let ran = ["/bin/dash", "/bin/bash"].into_iter().any(|shell| {
                    let (out, err) = run(shell, &command);
                    String::from_utf8_lossy(&[out, err].concat()).contains("PWNED")
                });
                assert!(ran, "no shell runs the value of {template:?}: {command:?}");
                assert!(
                    matches!(
                        Renderer::new().render(template, Kind::Shell, &v),
                        Err(TemplateError::Unprotected { .. })
                    ),
                    "{template:?} rendered"
                );
            }
        }

        /// The forms herd accepts in their place give the value as data.
        #[test]
        fn the_forms_to_write_instead_are_accepted() {
            let payload = "a[$(printf P\"\"WNED >&2)]'\"";
            let v = vars(json!({ "v": payload }));
            for template in [
                "( (printf %s {{ v }}) && true)",
                "echo \"${x-'a b'}\" >/dev/null; printf %s {{ v }}",
                "printf \\\n  %s {{ v }}",
                "[ -n {{ v }} ] && printf %s {{ v }}",
                "x=$(cat <<EOF\nbody\nEOF\n) && printf %s {{ v }}",
                "declare -r x={{ v }} 2>/dev/null || x={{ v }}; printf %s \"$x\"",
            ] {
                let command = Renderer::new()
                    .render(template, Kind::Shell, &v)
                    .unwrap_or_else(|e| panic!("{template:?}: {e}"));
                for shell in ["/bin/dash", "/bin/bash"] {
                    let (out, err) = run(shell, &command);
                    assert_eq!(
                        String::from_utf8_lossy(&out),
                        payload,
                        "{template:?} in {shell}: {}",
                        String::from_utf8_lossy(&err)
                    );
                }
            }
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(200))]

            /// Wherever an accepted value lands, it arrives as data, byte for byte.
            #[test]
            fn an_accepted_value_arrives_byte_exact(value in "[^\x00]{0,24}", at in 0usize..4) {
                let template = [
                    "printf %s {{ v }}",
                    "printf %s \"$(printf %s {{ v }}; echo .)\" | sed '$s/.$//'",
                    "x={{ v }}; printf %s \"$x\"",
                    "{% for i in [1] %}printf %s {{ v }}{% endfor %}",
                ][at];
                let v = vars(json!({ "v": value }));
                let command = Renderer::new().render(template, Kind::Shell, &v).unwrap();
                prop_assert_eq!(sh(&command), value.as_bytes());
            }

            /// Whatever the template, a value that is not `| raw` never runs.
            #[test]
            fn an_accepted_command_never_runs_a_value(parts in prop::collection::vec(fragment(), 0..12)) {
                let template: String = parts.concat();
                let payload = "a[$(printf P\"\"WNED >&2)]'\"$(printf P\"\"WNED)`printf P\"\"WNED`\nprintf P\"\"WNED #";
                // A raw value is shell text: here, a quote that moves the others.
                let v = vars(json!({ "v": payload, "r": "\"" }));
                if let Ok(command) = Renderer::new().render(&template, Kind::Shell, &v) {
                    // dash and, where there is one, bash (arrays, `((...))`).
                    for shell in ["/bin/sh", "/bin/bash"] {
                        if !std::path::Path::new(shell).exists() {
                            continue;
                        }
                        let (out, err) = run(shell, &command);
                        let said = [out, err].concat();
                        prop_assert!(
                            !String::from_utf8_lossy(&said).contains("PWNED"),
                            "{template:?} ran the value in {shell}: {command:?}"
                        );
                    }
                }
            }
        }
    }
}
