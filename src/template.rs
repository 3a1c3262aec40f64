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
//! Besides a host's variables, templates see Ansible's magic variables
//! (`groups`, `hostvars`, ...; see `fleet`), and `when:` conditions are
//! Jinja expressions evaluated here ([`Renderer::condition`]).

mod fleet;
mod mask;
mod placeholders;
mod secrets;
mod shell_context;
#[cfg(test)]
mod tests;

pub use fleet::{Fleet, HostEntry, MAGIC_VARS};
pub use mask::{leaf_texts, masked_value, Cut, OutputMask};
pub use secrets::{Secrets, MASK};
pub use shell_context::{find_unprotected, Place};

use placeholders::{Placeholders, PLACEHOLDERS};
use secrets::{find_words, SHORT};

use std::sync::{Arc, RwLock};

use minijinja::value::{Enumerator, Object, Value, ValueKind};
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
    /// A `when:` gave something other than true or false.
    #[error("`when:` gave {kind}, not true or false: compare it (`x == 'yes'`) or convert it (`x | bool`)")]
    NotBoolean { kind: String },
    /// The rendered command puts a value where quoting does not protect it.
    #[error("{}", place.rendered_message())]
    Unprotected { place: Place },
}

impl TemplateError {
    /// The text to look for in the user's file to point at the fault.
    pub fn needle(&self) -> Option<&str> {
        match self {
            TemplateError::Undefined { name } => Some(name),
            TemplateError::Invalid { .. }
            | TemplateError::NotBoolean { .. }
            | TemplateError::Unprotected { .. } => None,
        }
    }
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
    /// The groups, hosts and batches of the run (see [`Fleet`]).
    fleet: RwLock<Arc<Fleet>>,
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
        // Ansible's `to_json` (and Jinja's `tojson`): the value as JSON text.
        // A plain string, so that a shell field quotes it like any value
        // (minijinja's own `tojson` marks its output safe, unquoted).
        for name in ["to_json", "tojson"] {
            env.add_filter(name, |value: Value| -> Result<String, minijinja::Error> {
                serde_json::to_string(&value).map_err(|e| {
                    minijinja::Error::new(
                        minijinja::ErrorKind::InvalidOperation,
                        format!("cannot write this value as JSON: {e}"),
                    )
                })
            });
        }
        // Ansible's `bool`: the words a YAML 1.1 or INI file uses for a
        // boolean; anything else is refused rather than guessed.
        env.add_filter("bool", |value: Value| -> Result<bool, minijinja::Error> {
            to_bool(&value).ok_or_else(|| {
                minijinja::Error::new(
                    minijinja::ErrorKind::InvalidOperation,
                    format!(
                        "`| bool` takes true/false, yes/no, on/off or 1/0, not {}",
                        kind_of(&value)
                    ),
                )
            })
        });
        Renderer {
            env,
            secrets: Secrets::default(),
            fleet: RwLock::new(Arc::new(Fleet::default())),
        }
    }

    /// What templates know of the run besides a host's own variables; set
    /// as the plan learns it.
    pub fn set_fleet(&self, fleet: Fleet) {
        if let Ok(mut current) = self.fleet.write() {
            *current = Arc::new(fleet);
        }
    }

    /// Changes the run's [`Fleet`] in place.
    pub fn update_fleet(&self, change: impl FnOnce(&mut Fleet)) {
        if let Ok(mut current) = self.fleet.write() {
            change(Arc::make_mut(&mut current));
        }
    }

    fn fleet(&self) -> Arc<Fleet> {
        self.fleet
            .read()
            .map(|f| f.clone())
            .unwrap_or_else(|_| Arc::new(Fleet::default()))
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

    /// Evaluates `source`, a `when:` expression (Jinja, without `{{ }}`),
    /// over a host's variables. Like Ansible's conditionals, it must give
    /// true or false: a string (even `'false'`) or a number is an error.
    pub fn condition(
        &self,
        source: &str,
        vars: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<bool, TemplateError> {
        let trimmed = source.trim();
        if trimmed.starts_with("{{") || trimmed.starts_with("{%") {
            return Err(TemplateError::Invalid {
                message: "`when:` is an expression already: write it without `{{ }}`".into(),
            });
        }
        let expression = self
            .env
            .compile_expression(source)
            .map_err(|e| self.invalid(&e))?;
        let value = expression
            .eval(self.context(vars, false))
            .map_err(|error| self.failed(&error, expression.undeclared_variables(true), vars))?;
        match value.kind() {
            ValueKind::Bool => Ok(value.is_true()),
            // A bare name that is not defined (`when: relase_ok`) is named.
            ValueKind::Undefined => {
                let mut names: Vec<String> =
                    expression.undeclared_variables(true).into_iter().collect();
                names.sort();
                match names.into_iter().find(|n| !self.is_defined(n, vars)) {
                    Some(name) => Err(TemplateError::Undefined { name }),
                    None => Err(TemplateError::NotBoolean {
                        kind: kind_of(&value),
                    }),
                }
            }
            _ => Err(TemplateError::NotBoolean {
                kind: kind_of(&value),
            }),
        }
    }

    /// The variables a `when:` expression reads (top-level names), for the
    /// plan to tell which it cannot know before the run.
    pub fn condition_names(&self, source: &str) -> Vec<String> {
        let mut names: Vec<String> = self
            .env
            .compile_expression(source)
            .map(|e| e.undeclared_variables(false).into_iter().collect())
            .unwrap_or_default();
        names.sort();
        names
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
            .map_err(|e| self.invalid(&e))?;
        let context = self.context(vars, shown);
        if kind == Kind::Shell {
            PLACEHOLDERS.with(|p| *p.borrow_mut() = Some(Placeholders::new()));
        }
        let rendered = template.render(&context);
        let placeholders = PLACEHOLDERS.with(|p| p.borrow_mut().take());
        let rendered = rendered
            .map_err(|error| self.failed(&error, template.undeclared_variables(true), vars))?;
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
        if let Some(name) = vars.get("inventory_hostname").and_then(|v| v.as_str()) {
            for (magic, value) in self.fleet().vars_of(name, shown) {
                map.insert(magic.to_string(), value);
            }
        }
        Value::from(map)
    }

    /// Why a render failed: the first undefined name it reads, if one is.
    fn failed(
        &self,
        error: &minijinja::Error,
        names: std::collections::HashSet<String>,
        vars: &serde_json::Map<String, serde_json::Value>,
    ) -> TemplateError {
        if error.kind() != minijinja::ErrorKind::UndefinedError {
            return self.invalid(error);
        }
        let mut names: Vec<String> = names.into_iter().collect();
        names.sort();
        match names.into_iter().find(|n| !self.is_defined(n, vars)) {
            Some(name) => TemplateError::Undefined { name },
            // A subscript: `groups['nope']`, `hostvars[host].nope`.
            None => TemplateError::Invalid {
                message: "undefined value: a key, host or group that does not exist".into(),
            },
        }
    }

    /// A template's error as herd may show it. Its message may quote a
    /// value (`tried to include non-existing template "..."`, `unable to
    /// calculate 12 ** 99`), of this host, of another read through
    /// `hostvars`, or of `env`: every template, whatever its field, fails
    /// through here, so the secrets are masked here (see
    /// [`Secrets::mask_message`]).
    fn invalid(&self, error: &minijinja::Error) -> TemplateError {
        TemplateError::Invalid {
            message: self.secrets.mask_message(&describe(error)),
        }
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
        if MAGIC_VARS.contains(&first) && vars.contains_key("inventory_hostname") {
            // Its keys are hosts and groups, looked up as the template runs.
            return self.fleet().knows(first);
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

/// `| bool` as Ansible reads it; `None` for a value it does not know.
fn to_bool(value: &Value) -> Option<bool> {
    match value.kind() {
        ValueKind::Bool => Some(value.is_true()),
        ValueKind::Number => match i64::try_from(value.clone()).ok()? {
            0 => Some(false),
            1 => Some(true),
            _ => None,
        },
        ValueKind::String => match value.as_str()?.to_ascii_lowercase().as_str() {
            "yes" | "on" | "true" | "1" => Some(true),
            "no" | "off" | "false" | "0" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

/// A value's kind in words, without its text (it may be a secret).
fn kind_of(value: &Value) -> String {
    match value.kind() {
        ValueKind::Undefined => "an undefined value",
        ValueKind::None => "none",
        ValueKind::Bool => "a boolean",
        ValueKind::Number => "a number",
        ValueKind::String => "a string",
        ValueKind::Bytes => "bytes",
        ValueKind::Seq | ValueKind::Iterable => "a list",
        ValueKind::Map => "a mapping",
        _ => "a value",
    }
    .to_string()
}

fn describe(error: &minijinja::Error) -> String {
    match error.detail() {
        Some(detail) => detail.to_string(),
        None => error.kind().to_string(),
    }
}
