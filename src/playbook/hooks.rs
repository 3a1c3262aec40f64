//! The playbook's `hooks:`: shell commands run on the controller around the
//! rollout (before and after each batch, at the end on success or failure).
//! They are not templates: what they need to know comes in environment
//! variables (see the engine's `hooks` module and the README).

use serde::Deserialize;

use super::duration::Limit;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Hooks {
    #[serde(default)]
    pub before_batch: Option<String>,
    #[serde(default)]
    pub after_batch: Option<String>,
    #[serde(default)]
    pub on_success: Option<String>,
    #[serde(default)]
    pub on_failure: Option<String>,
    /// Limit on each hook; five minutes when not set.
    #[serde(default)]
    pub timeout: Option<Limit>,
}

impl Hooks {
    /// Each hook that is set, by its key.
    pub fn commands(&self) -> impl Iterator<Item = (&'static str, &String)> {
        [
            ("before_batch", &self.before_batch),
            ("after_batch", &self.after_batch),
            ("on_success", &self.on_success),
            ("on_failure", &self.on_failure),
        ]
        .into_iter()
        .filter_map(|(key, command)| command.as_ref().map(|c| (key, c)))
    }
}
