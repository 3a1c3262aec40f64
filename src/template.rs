//! Jinja templates over a host's variables, shell-safe by default.
//!
//! Two kinds of fields take templates. Shell fields (`run`, `cwd`, `preflight`,
//! rollback commands) quote every interpolated value for `/bin/sh`, so a host
//! variable holding `; rm -rf /` reaches the remote shell as data; `{{ x | raw }}`
//! opts out (Jinja's `| safe` is refused rather than being a second, quieter
//! way out). Quoting makes a value one shell word, so a value template may
//! only sit where the shell reads words: `shell_context` checks that. Plain
//! fields (URLs, upload paths, variables) are not quoted.
//! `env.NAME` reads the controller's environment; such values are secrets:
//! they are recorded so what hosts print can be masked, and a second,
//! display-only rendering shows them (and secret variables) as `***`.

mod mask;
mod shell_context;

pub use mask::{leaf_texts, masked_value};

pub use shell_context::find_unprotected;

use std::collections::BTreeSet;
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
}

impl TemplateError {
    /// The text to look for in the user's file to point at the fault.
    pub fn needle(&self) -> Option<&str> {
        match self {
            TemplateError::Undefined { name } => Some(name),
            TemplateError::Invalid { .. } => None,
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
        env.set_formatter(|out, state, value| {
            mask::note(value);
            if state.name().ends_with(".sh") && !value.is_safe() {
                let text = value.to_string();
                out.write_str(&shell_quote(&text))
                    .map_err(minijinja::Error::from)
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
        template.render(&context).map_err(|error| {
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
        })
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
}
