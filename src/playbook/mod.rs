//! The playbook: one rollout per file, as described in DESIGN.md.
//!
//! This module holds the file's shape (serde types that refuse unknown keys)
//! and the checks that need more than a type: each step does exactly one
//! thing, names are valid, the reload section makes sense. Templates are
//! checked later, per host, when the plan is built.

pub mod batch;
pub mod duration;
pub mod hooks;

use std::path::{Path, PathBuf};

use indexmap::IndexMap;
use serde::Deserialize;

use crate::source::SourceError;
use crate::yaml;
use batch::BatchSpec;
use duration::{Limit, Span};

/// A parsed playbook and its tree (to point at faults later).
#[derive(Debug, Clone)]
pub struct Playbook {
    pub file: PathBuf,
    pub spec: PlaybookSpec,
    pub doc: yaml::Document,
}

/// Variable names herd sets itself: `env` reads the controller's environment
/// in templates, `inventory_hostname` is the host's name in the inventory.
pub const RESERVED_VARS: &[&str] = &["env", "inventory_hostname"];

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlaybookSpec {
    #[serde(default)]
    pub name: Option<String>,
    pub hosts: String,
    #[serde(default)]
    pub vars: IndexMap<String, serde_json::Value>,
    #[serde(default)]
    pub rolling: Rolling,
    #[serde(default)]
    pub steps: Vec<Step>,
    #[serde(default)]
    pub reload: Option<Reload>,
    #[serde(default)]
    pub validate: Option<Validate>,
    #[serde(default)]
    pub rollback: Vec<Step>,
    #[serde(default)]
    pub release: Option<Release>,
    /// Commands run on the controller around the rollout.
    #[serde(default)]
    pub hooks: Option<hooks::Hooks>,
}

/// `release:`: herd builds each release in `PATH/releases/ID`, links the
/// shared paths into it and switches `PATH/current` to it (see `release`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Release {
    /// The directory that holds `releases/`, `shared/` and `current`.
    pub path: String,
    /// The release's name, a template; a UTC timestamp when not given.
    #[serde(default)]
    pub id: Option<String>,
    /// How many releases to keep on each host.
    #[serde(default = "default_keep")]
    pub keep: u64,
    /// Paths under `shared/` linked into each release; a trailing `/`
    /// makes a directory.
    #[serde(default)]
    pub shared: Vec<String>,
    #[serde(default, rename = "become")]
    pub become_: bool,
    #[serde(default)]
    pub become_user: Option<String>,
}

fn default_keep() -> u64 {
    5
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rolling {
    #[serde(default)]
    pub batch: Option<BatchSpec>,
    #[serde(default)]
    pub max_fail: Option<batch::FailLimit>,
    #[serde(default)]
    pub pause: Option<Span>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Step {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub run: Option<String>,
    #[serde(default)]
    pub upload: Option<Upload>,
    /// A tar archive (`.tar` or `.tar.gz`) unpacked into `dest`.
    #[serde(default)]
    pub archive: Option<Upload>,
    #[serde(default)]
    pub cwd: Option<String>,
    #[serde(default)]
    pub env: IndexMap<String, String>,
    #[serde(default)]
    pub timeout: Option<Limit>,
    #[serde(default, rename = "become")]
    pub become_: bool,
    #[serde(default)]
    pub become_user: Option<String>,
    #[serde(default)]
    pub once: bool,
    #[serde(default)]
    pub capture: Option<String>,
    #[serde(default)]
    pub ignore_errors: bool,
    /// Run on the controller rather than on the host.
    #[serde(default)]
    pub local: bool,
    /// Run only on the hosts where this holds (decided before the run).
    #[serde(default)]
    pub when: Option<Condition>,
}

/// `when:` a Jinja expression, a list of them (all must hold), or a
/// plain `true`/`false`.
#[derive(Debug, Clone, Deserialize)]
#[serde(try_from = "serde_json::Value")]
pub enum Condition {
    Fixed(bool),
    One(String),
    All(Vec<String>),
}

impl TryFrom<serde_json::Value> for Condition {
    type Error = String;

    fn try_from(value: serde_json::Value) -> Result<Self, String> {
        use serde_json::Value;
        let wrong = |what: &str| {
            format!(
                "`when` takes an expression (a string), a list of them or true/false, not {what}"
            )
        };
        match value {
            Value::Bool(flag) => Ok(Condition::Fixed(flag)),
            Value::String(text) => Ok(Condition::One(text)),
            Value::Array(items) => items
                .into_iter()
                .map(|item| match item {
                    Value::String(text) => Ok(text),
                    Value::Bool(flag) => Ok(flag.to_string()),
                    _ => Err(wrong("a list holding something else")),
                })
                .collect::<Result<_, _>>()
                .map(Condition::All),
            Value::Null => Err(wrong("nothing")),
            Value::Number(_) => Err(wrong("a number")),
            Value::Object(_) => Err(wrong("a mapping")),
        }
    }
}

impl Condition {
    /// Each expression to evaluate.
    pub fn conditions(&self) -> Vec<String> {
        match self {
            Condition::Fixed(flag) => vec![flag.to_string()],
            Condition::One(text) => vec![text.clone()],
            Condition::All(list) => list.clone(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Upload {
    pub src: String,
    pub dest: String,
    #[serde(default)]
    pub mode: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reload {
    #[serde(default = "default_server")]
    pub server: String,
    #[serde(default)]
    pub pidfile: Option<String>,
    #[serde(default)]
    pub unit: Option<String>,
    /// `system` or `user`: which systemd manager runs `unit`.
    #[serde(default)]
    pub scope: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    /// `kill`, `systemctl`, `systemctl-kill` or `auto`.
    #[serde(default)]
    pub delivery: Option<String>,
    /// The container the master runs in.
    #[serde(default)]
    pub container: Option<String>,
    /// `docker` or `podman`; by default whichever the host has.
    #[serde(default)]
    pub engine: Option<String>,
    /// Every container of a Compose service.
    #[serde(default)]
    pub compose: Option<Compose>,
    #[serde(default)]
    pub preflight: Option<String>,
    /// Whether the master preloads the app (Unicorn, Puma): `true`,
    /// `false`, or a template giving one of them (or nothing) per host;
    /// unset or empty: read on the host where a signal depends on it.
    #[serde(default)]
    pub preload: Option<BoolOrText>,
    #[serde(default)]
    pub start: Option<String>,
    #[serde(default)]
    pub signal: Option<String>,
    #[serde(default, rename = "become")]
    pub become_: bool,
    #[serde(default)]
    pub become_user: Option<String>,
}

/// A Compose service, by the labels Compose gives its containers.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Compose {
    pub project: String,
    pub service: String,
}

/// A YAML boolean, or text (a template) to render into one.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum BoolOrText {
    Bool(bool),
    Text(String),
}

impl BoolOrText {
    /// As template text: `true`, `false`, or the text.
    pub fn text(&self) -> String {
        match self {
            BoolOrText::Bool(value) => value.to_string(),
            BoolOrText::Text(text) => text.clone(),
        }
    }
}

fn default_server() -> String {
    "gunicorn".to_string()
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Validate {
    #[serde(default)]
    pub timeout: Option<Limit>,
    #[serde(default)]
    pub settle: Option<Span>,
    #[serde(default)]
    pub http: Option<HttpCheck>,
    #[serde(default)]
    pub run: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpCheck {
    pub url: String,
    #[serde(default = "default_status", deserialize_with = "status_code")]
    pub status: u16,
    #[serde(default)]
    pub contains: Option<String>,
}

fn default_status() -> u16 {
    200
}

/// An HTTP status code: 100 to 599.
fn status_code<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<u16, D::Error> {
    let code = u16::deserialize(deserializer)?;
    if !(100..=599).contains(&code) {
        return Err(serde::de::Error::custom(format!(
            "{code} is not an HTTP status: give 100 to 599"
        )));
    }
    Ok(code)
}

/// Why a playbook could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum PlaybookError {
    #[error("cannot read playbook {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: crate::source::ReadError,
    },
    #[error("{0}")]
    Source(#[from] SourceError),
}

impl Step {
    /// A short label for progress lines and reports, on one line.
    pub fn label(&self, index: usize) -> String {
        crate::shell::one_line(&self.long_label(index))
    }

    fn long_label(&self, index: usize) -> String {
        if let Some(name) = &self.name {
            return name.clone();
        }
        match (&self.run, &self.upload) {
            (Some(run), _) => {
                let first = run.lines().next().unwrap_or("").trim();
                let mut label: String = first.chars().take(48).collect();
                if first.chars().count() > 48 {
                    label.push('…');
                }
                label
            }
            (None, Some(upload)) => format!("upload {}", upload.dest),
            (None, None) => match &self.archive {
                Some(archive) => format!("archive {}", archive.dest),
                None => format!("step {}", index + 1),
            },
        }
    }
}

impl Playbook {
    pub fn load(path: &Path) -> Result<Playbook, PlaybookError> {
        let text = crate::source::read_text(path).map_err(|source| PlaybookError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(Playbook::parse(path, &text)?)
    }

    pub fn parse(path: &Path, text: &str) -> Result<Playbook, SourceError> {
        let doc = yaml::Document::load(path, text)?;
        let spec: PlaybookSpec = doc.deserialize()?;
        let playbook = Playbook {
            file: path.to_path_buf(),
            spec,
            doc,
        };
        playbook.check()?;
        Ok(playbook)
    }

    /// An error at the value reached by `path` (`["steps", "2", "run"]`), at
    /// `needle` when it is written inside that value.
    pub fn error_in(
        &self,
        path: &[&str],
        needle: Option<&str>,
        message: impl Into<String>,
    ) -> SourceError {
        self.doc.error_in(path, needle, message)
    }

    /// Checks that need more than the types.
    fn check(&self) -> Result<(), SourceError> {
        let spec = &self.spec;
        if spec.hosts.trim().is_empty() {
            return Err(self.error_in(
                &["hosts"],
                None,
                "`hosts` is empty: name a host, a group or a pattern",
            ));
        }
        for name in spec.vars.keys() {
            if self.reserved(name) {
                let at = self
                    .doc
                    .root
                    .get("vars")
                    .and_then(|vars| vars.key(name))
                    .map_or(self.doc.root.at, |key| key.at);
                return Err(self.doc.error(
                    at,
                    format!(
                        "`{name}` is a name herd sets itself: call the variable something else"
                    ),
                ));
            }
        }
        for (section, steps) in [("steps", &spec.steps), ("rollback", &spec.rollback)] {
            for (index, step) in steps.iter().enumerate() {
                self.check_step(step, section, &index.to_string())?;
            }
        }
        if let Some(reload) = &spec.reload {
            self.check_reload(reload)?;
        }
        if let Some(hooks) = &spec.hooks {
            if let Some((key, _)) = hooks.commands().find(|(_, c)| c.trim().is_empty()) {
                return Err(self.error_in(
                    &["hooks", key],
                    None,
                    format!("hook `{key}` is empty: give it a command or leave it out"),
                ));
            }
        }
        if let Some(release) = &spec.release {
            self.check_release(release)?;
        }
        Ok(())
    }

    /// A name herd sets itself: [`RESERVED_VARS`], and with `release:` its
    /// release variables (a capture into one would steer herd's own steps).
    fn reserved(&self, name: &str) -> bool {
        RESERVED_VARS.contains(&name)
            || crate::template::MAGIC_VARS.contains(&name)
            || (self.spec.release.is_some()
                && (name == crate::release::var::DIR || name.starts_with("herd_release_")))
    }

    fn check_release(&self, release: &Release) -> Result<(), SourceError> {
        let fail =
            |key: &str, message: String| Err(self.error_in(&["release", key], None, message));
        if release.keep == 0 {
            return fail(
                "keep",
                "`keep: 0` would remove the release being deployed: keep at least 1".into(),
            );
        }
        if release.become_user.is_some() && !release.become_ {
            return fail(
                "become_user",
                "`become_user` takes effect with `become: true`".into(),
            );
        }
        if let Some(id) = &release.id {
            if !id.contains("{{") && !id.contains("{%") {
                if let Err(why) = crate::release::check_id(id) {
                    return fail("id", why);
                }
            }
        }
        for (index, shared) in release.shared.iter().enumerate() {
            if let Err(why) = crate::release::check_shared(shared) {
                return Err(self.error_in(&["release", "shared", &index.to_string()], None, why));
            }
        }
        Ok(())
    }

    fn check_step(&self, step: &Step, section: &str, index: &str) -> Result<(), SourceError> {
        let fail = |field: Option<&str>, message: String| {
            let path: Vec<&str> = [section, index].into_iter().chain(field).collect();
            Err(self.error_in(&path, None, message))
        };
        let actions: Vec<&str> = [
            ("run", step.run.is_some()),
            ("upload", step.upload.is_some()),
            ("archive", step.archive.is_some()),
        ]
        .into_iter()
        .filter_map(|(key, given)| given.then_some(key))
        .collect();
        match actions.as_slice() {
            [] => {
                return fail(
                    None,
                    format!("a step in `{section}` needs `run`, `upload` or `archive`"),
                )
            }
            [first, second, ..] => {
                return fail(
                    None,
                    format!(
                        "a step in `{section}` has both `{first}` and `{second}`: split it in two"
                    ),
                )
            }
            [_] => {}
        }
        if let Some(capture) = &step.capture {
            if !is_identifier(capture) {
                return fail(
                    Some("capture"),
                    format!("`capture: {capture}` is not a valid variable name"),
                );
            }
            if self.reserved(capture) {
                return fail(
                    Some("capture"),
                    format!("`capture: {capture}` is a name herd sets itself: choose another"),
                );
            }
        }
        for (key, given) in [("upload", &step.upload), ("archive", &step.archive)] {
            if let Some(mode) = given.as_ref().and_then(|u| u.mode.as_ref()) {
                if u32::from_str_radix(mode, 8).is_err() || mode.len() > 4 {
                    let path = [section, index, key, "mode"];
                    return Err(self.error_in(
                        &path,
                        None,
                        format!("{key} mode `{mode}` is not an octal mode like \"0644\""),
                    ));
                }
            }
        }
        // Keys are written into `export KEY=...`: only a shell name is data there.
        if let Some(key) = step.env.keys().find(|k| !is_identifier(k)) {
            let message = format!("env key `{key}` is not a shell variable name: use letters, digits and _, not starting with a digit");
            let env_path = [section, index, "env"];
            return Err(
                match self.doc.root.find(&env_path).and_then(|env| env.key(key)) {
                    Some(written) => self.doc.error(written.at, message),
                    None => self.error_in(&env_path, None, message),
                },
            );
        }
        if step.local {
            let conflict = if step.upload.is_some() {
                Some("`upload`")
            } else if step.become_ {
                Some("`become`")
            } else if step.become_user.is_some() {
                Some("`become_user`")
            } else {
                None
            };
            if let Some(key) = conflict {
                return fail(
                    Some("local"),
                    format!("a `local` step runs on the controller: it cannot have {key}"),
                );
            }
        }
        if step.once && section == "rollback" {
            return fail(
                Some("once"),
                "`once` has no meaning in `rollback`".to_string(),
            );
        }
        Ok(())
    }

    fn check_reload(&self, reload: &Reload) -> Result<(), SourceError> {
        // A template names each host's server or signal: checked on each
        // host when the plan is built.
        if !is_template(&reload.server) {
            let Some(server) = crate::reload::server::by_name(&reload.server) else {
                return Err(self.error_in(
                    &["reload", "server"],
                    None,
                    format!(
                        "unknown server `{}`: herd reloads {}",
                        reload.server,
                        crate::reload::server::names()
                    ),
                ));
            };
            if let Some(signal) = reload.signal.as_deref().filter(|s| !is_template(s)) {
                if let Err(message) = server.signal(Some(signal)) {
                    return Err(self.error_in(&["reload", "signal"], None, message));
                }
            }
        }
        if reload.become_user.is_some() && !reload.become_ {
            return Err(self.error_in(
                &["reload", "become_user"],
                None,
                "`become_user` takes effect with `become: true`",
            ));
        }
        reload
            .keys()
            .choose()
            .map(drop)
            .map_err(|e| self.error_in(&["reload", e.key], None, e.message))
    }
}

/// Whether a playbook's text is a template (rendered per host) rather than
/// a literal value.
pub fn is_template(text: &str) -> bool {
    text.contains("{{") || text.contains("{%")
}

pub fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests;
