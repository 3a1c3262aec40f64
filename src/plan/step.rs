//! A step ready to run: made from the playbook's, its templates, and how it
//! renders on one host into the exact command line sent over SSH.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::artifact::Artifact;
use crate::inventory::Vars;
use crate::playbook::Playbook;
use crate::shell::{quote as shell_quote, wrap, wrap_hidden};
use crate::source::SourceError;
use crate::template::{Kind, Renderer, TemplateError};

/// One step of a plan, templates not yet rendered (they may use captures).
#[derive(Debug, Clone)]
pub struct StepPlan {
    pub name: String,
    pub action: Action,
    pub cwd: Option<String>,
    pub env: Vec<(String, String)>,
    pub timeout: Duration,
    pub become_: bool,
    pub become_user: Option<String>,
    pub once: bool,
    pub capture: Option<String>,
    pub ignore_errors: bool,
    /// `local: true`: the step runs on the controller, with `/bin/sh -c`,
    /// from this directory (the playbook's); a relative `cwd` is taken from
    /// there. The rendered command is the script itself (no `sudo`).
    pub local: Option<PathBuf>,
    /// `when:`, decided for every host before the run.
    pub when: When,
}

/// A step's `when:` conditions (all must hold) and, per host of the plan,
/// whether the step is skipped there.
#[derive(Debug, Clone, Default)]
pub struct When {
    pub conditions: Vec<String>,
    /// By host index; empty until the plan decided it.
    pub skip: Vec<bool>,
}

impl When {
    /// Whether `when:` is false on the host `index` of the plan.
    pub fn skips(&self, index: usize) -> bool {
        self.skip.get(index).copied().unwrap_or(false)
    }

    /// The conditions as the playbook gives them, for messages.
    pub fn describe(&self) -> String {
        self.conditions.join(" and ")
    }
}

#[derive(Debug, Clone)]
pub enum Action {
    /// A shell command (a template).
    Run(String),
    /// A file, directory or archive on the controller, shipped to `dest`
    /// (a plain template); `mode` as the step gave it.
    Upload {
        artifact: Arc<Artifact>,
        dest: String,
        mode: Option<u32>,
    },
}

/// A step rendered for one host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rendered {
    Run {
        command: String,
    },
    Upload {
        artifact: Arc<Artifact>,
        dest: String,
        mode: Option<u32>,
        /// Whom the files belong to under `become` (rendered `become_user`).
        become_user: Option<String>,
    },
}

impl StepPlan {
    /// A plain command, as given to `herd exec`.
    pub fn command(command: &str, timeout: Duration) -> StepPlan {
        StepPlan {
            name: command.to_string(),
            action: Action::Run(command.to_string()),
            cwd: None,
            env: Vec::new(),
            timeout,
            become_: false,
            become_user: None,
            once: false,
            capture: None,
            ignore_errors: false,
            local: None,
            when: When::default(),
        }
    }

    /// The playbook key that gave this step its action.
    pub fn action_key(&self) -> &'static str {
        match &self.action {
            Action::Run(_) => "run",
            Action::Upload { artifact, .. } => match artifact.kind {
                crate::artifact::Kind::Archive { .. } => "archive",
                _ => "upload",
            },
        }
    }

    /// Every template of this step, with the field it sits in.
    pub fn templates(&self) -> Vec<(&'static str, &str)> {
        let mut all = Vec::new();
        match &self.action {
            Action::Run(command) => all.push(("run", command.as_str())),
            Action::Upload { dest, .. } => all.push(("dest", dest.as_str())),
        }
        if let Some(cwd) = &self.cwd {
            all.push(("cwd", cwd.as_str()));
        }
        all.extend(self.env.iter().map(|(_, v)| ("env", v.as_str())));
        if let Some(user) = &self.become_user {
            all.push(("become_user", user.as_str()));
        }
        all
    }

    /// Renders this step with a host's variables (captures included) to
    /// run, given `uses`, what its templates made from
    /// secrets: a command under `become` that holds one goes to sudo's shell
    /// on its stdin, not on sudo's command line, where every user of the
    /// host (`ps`) and sudo's log would see it.
    pub fn render_to_run(
        &self,
        renderer: &Renderer,
        vars: &Vars,
        uses: &[String],
    ) -> Result<Rendered, TemplateError> {
        let hidden = self.hidden(renderer, uses);
        self.render_with(|source, kind| renderer.render(source, kind, vars), &hidden)
    }

    /// Renders this step for display, in the form it runs in given `uses`
    /// (see [`StepPlan::render_to_run`]): `shown` are the host's variables
    /// with secrets as `***`, so no secret appears in the command, in any
    /// form.
    pub fn render_shown(
        &self,
        renderer: &Renderer,
        shown: &Vars,
        uses: &[String],
    ) -> Result<Rendered, TemplateError> {
        let hidden = self.hidden(renderer, uses);
        self.render_with(
            |source, kind| renderer.render_shown(source, kind, shown),
            &hidden,
        )
    }

    /// The real texts of the values this step's templates made from
    /// secrets (see [`Renderer::secret_uses`]), to mask in what it prints.
    pub fn secret_uses(&self, renderer: &Renderer, vars: &Vars, shown: &Vars) -> Vec<String> {
        self.templates()
            .into_iter()
            .flat_map(|(field, source)| {
                let kind = if field == "run" {
                    Kind::Shell
                } else {
                    Kind::Plain
                };
                renderer.secret_uses(source, kind, vars, shown)
            })
            .collect()
    }

    /// Whether a command of this step goes to sudo's shell on stdin: under
    /// `become`, when its templates used a secret (`uses`) or it holds one
    /// written out.
    fn hidden<'a>(
        &'a self,
        renderer: &'a Renderer,
        uses: &'a [String],
    ) -> impl Fn(&str) -> bool + 'a {
        move |script| {
            self.become_
                && (!uses.is_empty() || renderer.secrets().mask_used(script, uses) != script)
        }
    }

    fn render_with(
        &self,
        render: impl Fn(&str, Kind) -> Result<String, TemplateError>,
        hidden: &dyn Fn(&str) -> bool,
    ) -> Result<Rendered, TemplateError> {
        let become_user = self
            .become_user
            .as_deref()
            .map(|user| render(user, Kind::Plain))
            .transpose()?;
        match &self.action {
            Action::Upload {
                artifact,
                dest,
                mode,
            } => Ok(Rendered::Upload {
                artifact: artifact.clone(),
                dest: render(dest, Kind::Plain)?,
                mode: *mode,
                become_user,
            }),
            Action::Run(command) => {
                let mut script = String::new();
                if let Some(cwd) = &self.cwd {
                    let cwd = render(cwd, Kind::Plain)?;
                    script.push_str(&format!("cd {} || exit 1\n", shell_quote(&cwd)));
                }
                for (name, value) in &self.env {
                    let value = render(value, Kind::Plain)?;
                    script.push_str(&format!("export {name}={}\n", shell_quote(&value)));
                }
                script.push_str(&render(command, Kind::Shell)?);
                let command = match hidden(&script) {
                    true => wrap_hidden(&script, become_user.as_deref()),
                    false => wrap(&script, self.become_, become_user.as_deref()),
                };
                Ok(Rendered::Run { command })
            }
        }
    }
}

/// Where local steps and hooks run: the playbook's directory (`.` for a
/// playbook named without one).
pub(super) fn local_dir(base: &Path) -> PathBuf {
    if base.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        base.to_path_buf()
    }
}

/// The steps of `section` (`steps` or `rollback`), their artifacts
/// checked: a `src` herd cannot read is an error at its key.
pub(super) fn step_plans(
    playbook: &Playbook,
    section: &str,
    base: &Path,
    default_timeout: Duration,
) -> Result<Vec<StepPlan>, SourceError> {
    let steps = match section {
        "steps" => &playbook.spec.steps,
        _ => &playbook.spec.rollback,
    };
    steps
        .iter()
        .enumerate()
        .map(|(index, step)| {
            let action = match (&step.run, &step.upload, &step.archive) {
                (Some(run), _, _) => Action::Run(run.clone()),
                (None, Some(given), _) | (None, None, Some(given)) => {
                    let key = if step.upload.is_some() {
                        "upload"
                    } else {
                        "archive"
                    };
                    let src = super::target::resolve(&given.src, base);
                    let at = [section, &index.to_string(), key, "src"];
                    let artifact = match key {
                        "upload" => Artifact::upload(&src),
                        _ => Artifact::archive(&src),
                    }
                    .map_err(|message| playbook.error_in(&at, None, message))?;
                    Action::Upload {
                        artifact: Arc::new(artifact),
                        dest: given.dest.clone(),
                        mode: given
                            .mode
                            .as_deref()
                            .and_then(|m| u32::from_str_radix(m, 8).ok()),
                    }
                }
                (None, None, None) => unreachable!("the playbook check requires an action"),
            };
            Ok(StepPlan {
                name: step.label(index),
                action,
                cwd: step.cwd.clone(),
                env: step
                    .env
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
                timeout: step.timeout.map_or(default_timeout, |t| t.0),
                become_: step.become_,
                become_user: step.become_user.clone(),
                once: step.once,
                capture: step.capture.clone(),
                ignore_errors: step.ignore_errors,
                local: step.local.then(|| local_dir(base)),
                when: When {
                    conditions: step
                        .when
                        .as_ref()
                        .map(|w| w.conditions())
                        .unwrap_or_default(),
                    skip: Vec::new(),
                },
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn renders_cwd_env_and_become() {
        let mut step = StepPlan::command("ls {{ dir }}", Duration::from_secs(5));
        step.cwd = Some("{{ dir }}".into());
        step.env = vec![("MODE".into(), "fast lane".into())];
        step.become_ = true;
        let vars = json!({"dir": "/srv/a b"}).as_object().cloned().unwrap();
        let Rendered::Run { command } = step.render_to_run(&Renderer::new(), &vars, &[]).unwrap()
        else {
            panic!("expected a command");
        };
        assert_eq!(
            command,
            r#"sudo -n -H -u root -- /bin/sh -c 'cd '\''/srv/a b'\'' || exit 1
export MODE='\''fast lane'\''
ls '\''/srv/a b'\'''"#
        );
        // Made from a secret: the script goes to sudo's shell on stdin.
        let Rendered::Run { command } = step
            .render_to_run(&Renderer::new(), &vars, &["/srv/a b".to_string()])
            .unwrap()
        else {
            panic!("expected a command");
        };
        assert_eq!(
            command,
            r#"printf '%s\n' 'cd '\''/srv/a b'\'' || exit 1
export MODE='\''fast lane'\''
ls '\''/srv/a b'\''' | sudo -n -H -u root -- /bin/sh -c 'eval "$(cat)"'"#
        );
    }
}
