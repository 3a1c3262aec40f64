//! From files and flags to a [`Plan`]: hosts resolved, variables merged,
//! batches cut, every template checked on every host. Building a plan
//! contacts no host; every mistake in the input is found here, before the
//! first connection, and points at its file, line and column.

mod checks;
mod fleet;
pub mod hooks;
mod release;
pub mod reload;
pub mod step;
pub mod target;
mod vars;
mod when;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use crate::inventory::{Inventory, InventoryError, Vars};
use crate::playbook::batch::{BatchSpec, FailLimit};
use crate::playbook::{Playbook, PlaybookError};
use crate::release::ReleasePlan;
use crate::source::SourceError;
use crate::template::Renderer;
use crate::transport::Target;
use release::{release_targets, release_vars, ReleaseId};
use reload::ReloadPlan;
use step::{local_dir, step_plans, Action, StepPlan};
use target::{target_for, TargetDefaults};
use vars::{
    add_play_vars, mark_secrets, parse_extra_vars, read_ssh_config, secret_names, shown_vars,
};

/// What the user asked to run.
#[derive(Debug, Clone)]
pub enum Job {
    Playbook(PathBuf),
    /// `herd exec`: one command, a template.
    Command(String),
    /// `herd reload`: the reload stage alone.
    Reload(Box<ReloadPlan>),
    /// `herd rollback`: switch each host's `current` to `target`, then the
    /// playbook's reload and validation. `current` is what each host's
    /// `current` named when herd read it (by host name): a host where it
    /// changed since is not switched.
    Rollback {
        playbook: PathBuf,
        target: String,
        current: std::collections::BTreeMap<String, String>,
    },
    /// `herd releases` (and `herd rollback`'s look first): the playbook's
    /// hosts and their release path, nothing to run.
    Releases(PathBuf),
}

impl Job {
    fn playbook(&self) -> Option<&Path> {
        match self {
            Job::Playbook(path) | Job::Rollback { playbook: path, .. } | Job::Releases(path) => {
                Some(path)
            }
            Job::Command(_) | Job::Reload(_) => None,
        }
    }
}

/// Everything a plan is built from (what the command line said).
#[derive(Debug, Clone)]
pub struct PlanRequest {
    pub job: Job,
    pub inventory: PathBuf,
    pub limit: Option<String>,
    pub extra_vars: Vec<String>,
    pub batch: Option<String>,
    pub known_hosts: Option<PathBuf>,
    /// `-F`: the OpenSSH client config; `~/.ssh/config` when not given.
    pub ssh_config: Option<PathBuf>,
    /// Timeout of a step that sets none.
    pub step_timeout: Duration,
}

/// A host as the plan will touch it.
#[derive(Debug, Clone)]
pub struct PlannedHost {
    pub name: String,
    pub target: Target,
    /// Inventory, playbook and `-e` variables, merged and rendered
    /// (shared with `hostvars`, see [`crate::template::Fleet`]).
    pub vars: Arc<Vars>,
    /// The same variables as herd shows them, secrets as `***`.
    pub shown_vars: Arc<Vars>,
    /// The variables named in `herd_secret_vars`: a capture into one is
    /// secret too.
    pub secret_names: Vec<String>,
}

/// A rollout, fully resolved and checked.
pub struct Plan {
    pub title: String,
    pub hosts: Vec<PlannedHost>,
    /// Host indexes per batch, in order.
    pub batches: Vec<Vec<usize>>,
    pub max_fail: usize,
    pub pause: Duration,
    pub steps: Vec<StepPlan>,
    pub rollback: Vec<StepPlan>,
    /// Reload and validation after the steps, per host.
    pub reload: Option<ReloadPlan>,
    /// The playbook's `release:`; its steps are in `steps`, `rollback`
    /// and `finish`.
    pub release: Option<ReleasePlan>,
    /// Steps after a host's reload was proven (pruning old releases); a
    /// failure is a warning, the host stays done.
    pub finish: Vec<StepPlan>,
    /// The playbook's `hooks:`, run on the controller by the engine.
    pub hooks: Option<hooks::HookPlan>,
    pub renderer: Arc<Renderer>,
}

/// Why no plan could be made; every variant means exit code 2.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error(transparent)]
    Inventory(#[from] InventoryError),
    #[error(transparent)]
    Playbook(#[from] PlaybookError),
    #[error("{0}")]
    Source(#[from] SourceError),
    #[error("{0}")]
    Usage(String),
}

impl Plan {
    pub fn build(request: &PlanRequest) -> Result<Plan, PlanError> {
        let inventory = Inventory::load(&request.inventory)?;
        let playbook = request.job.playbook().map(Playbook::load).transpose()?;
        let mut extra = parse_extra_vars(&request.extra_vars)?;
        let release = playbook
            .as_ref()
            .and_then(|p| p.spec.release.as_ref())
            .map(|r| ReleasePlan::from_playbook(r, request.step_timeout));
        if let (Some(p), None, Job::Rollback { .. } | Job::Releases(_)) =
            (&playbook, &release, &request.job)
        {
            return Err(p
                .error_in(&[], None, "this command needs `release:` in the playbook")
                .into());
        }
        if let Some(release) = &release {
            release_targets(&request.job, release, &mut extra);
        }
        let default_id = crate::release::timestamp_id();

        // The hosts in Ansible's order, which the batches follow: the play's
        // `hosts:` order kept by --limit; without a playbook, --limit's own
        // order (as `ansible PATTERN`), or `all`'s.
        let played = playbook
            .as_ref()
            .map(|p| select_in_playbook(&inventory, p))
            .transpose()?;
        let limited = request
            .limit
            .as_ref()
            .map(|limit| {
                inventory.select_limit(limit).map_err(|e| {
                    SourceError::at(
                        Path::new("--limit"),
                        limit,
                        1,
                        limit[..e.offset.min(limit.len())].chars().count() + 1,
                        e.message.clone(),
                    )
                })
            })
            .transpose()?;
        let selected = match (played, limited) {
            (Some(mut played), Some(limited)) => {
                let limited: std::collections::HashSet<&str> =
                    limited.iter().map(|h| h.name.as_str()).collect();
                played.retain(|h| limited.contains(h.name.as_str()));
                played
            }
            (Some(played), None) => played,
            (None, Some(limited)) => limited,
            (None, None) => inventory
                .group_hosts("all")
                .into_iter()
                .map(|i| &inventory.hosts[i])
                .collect(),
        };
        if selected.is_empty() {
            return Err(PlanError::Usage(
                "no host matches: the playbook's `hosts` and --limit select nothing".into(),
            ));
        }

        // Batches are cut before the hosts' variables are made: templates
        // see their batch (`ansible_play_batch`).
        let rolling = match (&request.job, &playbook) {
            (Job::Releases(_), _) | (_, None) => None,
            (_, Some(p)) => Some(p.spec.rolling.clone()),
        };
        let spec = match &request.batch {
            Some(text) => BatchSpec::parse(text)
                .map_err(|e| PlanError::Usage(format!("--batch {text}: {e}")))?,
            None => rolling
                .as_ref()
                .and_then(|r| r.batch.clone())
                .unwrap_or_else(|| BatchSpec::parse("100%").expect("100% is a valid batch")),
        };
        let mut next = 0;
        let batches: Vec<Vec<usize>> = spec
            .cut(selected.len())
            .into_iter()
            .map(|size| {
                let batch: Vec<usize> = (next..next + size).collect();
                next += size;
                batch
            })
            .collect();

        let renderer = Arc::new(Renderer::new());
        renderer.set_fleet(fleet::of_run(&inventory, &selected, &batches));
        let defaults = TargetDefaults {
            ssh_config: read_ssh_config(request.ssh_config.as_deref())?,
            known_hosts: request.known_hosts.clone(),
            base_dir: request
                .inventory
                .parent()
                .map(Path::to_path_buf)
                .unwrap_or_default(),
        };
        let mut hosts = Vec::with_capacity(selected.len());
        for host in selected {
            let mut vars = host.vars.clone();
            vars.insert(
                "inventory_hostname".into(),
                Value::String(host.name.clone()),
            );
            vars.extend(extra.clone());
            let base = vars.clone();
            // The host's secrets are known before the play vars are made,
            // so a template error there masks them; a fault in how they
            // are declared is told below.
            let known = secret_names(
                &inventory,
                host,
                playbook.as_ref(),
                &renderer,
                &vars,
                &extra,
            )
            .or_else(|_| secret_names(&inventory, host, None, &renderer, &vars, &extra))
            .unwrap_or_default();
            mark_secrets(&vars, &known, renderer.secrets());
            if let Some(playbook) = &playbook {
                add_play_vars(playbook, &renderer, &mut vars, &extra)?;
            }
            let secrets = secret_names(
                &inventory,
                host,
                playbook.as_ref(),
                &renderer,
                &vars,
                &extra,
            )?;
            mark_secrets(&vars, &secrets, renderer.secrets());
            let target = target_for(&host.name, &vars, &defaults)
                .map_err(|e| target_error(&inventory, host, playbook.as_ref(), &extra, &e))?;
            // Templates may name the address herd connects to, set or not
            // (after ssh_config's HostName).
            vars.entry("ansible_host")
                .or_insert_with(|| Value::String(target.address.clone()));
            if let (Some(playbook), Some(release)) = (&playbook, &release) {
                let id = ReleaseId::for_job(&request.job, &host.name, &default_id);
                release_vars(
                    playbook, release, &renderer, host, &mut vars, &secrets, &extra, id,
                )?;
            }
            let shown_vars =
                shown_vars(playbook.as_ref(), &renderer, &base, &vars, &secrets, &extra);
            hosts.push(PlannedHost {
                name: host.name.clone(),
                target,
                vars: Arc::new(vars),
                shown_vars: Arc::new(shown_vars),
                secret_names: secrets,
            });
        }

        let hooks = playbook.as_ref().and_then(|p| {
            let base = p.file.parent().map(Path::to_path_buf).unwrap_or_default();
            let mut hooks = hooks::HookPlan::from_playbook(p, local_dir(&base))?;
            if let Job::Rollback { .. } = request.job {
                hooks.command = "rollback".to_string();
            }
            Some(hooks)
        });
        fleet::add_hostvars(&inventory, &hosts, playbook.as_ref(), &renderer, &extra)?;

        let (title, steps, rollback, reload) = match (&request.job, &playbook) {
            (Job::Releases(_), Some(p)) => {
                (p.file.display().to_string(), Vec::new(), Vec::new(), None)
            }
            (_, Some(p)) => {
                let base = p.file.parent().map(Path::to_path_buf).unwrap_or_default();
                let (mut steps, rollback) = match &request.job {
                    Job::Rollback { .. } => (Vec::new(), Vec::new()),
                    _ => (
                        step_plans(p, "steps", &base, request.step_timeout)?,
                        step_plans(p, "rollback", &base, request.step_timeout)?,
                    ),
                };
                if release.is_some() {
                    // Steps run in the release's directory unless they say otherwise.
                    // A local step's `cwd` is on the controller.
                    for step in steps
                        .iter_mut()
                        .filter(|s| s.cwd.is_none() && s.local.is_none())
                    {
                        if matches!(step.action, Action::Run(_)) {
                            step.cwd = Some(format!("{{{{ {} }}}}", crate::release::var::DIR));
                        }
                    }
                }
                let mut title = crate::shell::one_line(
                    &p.spec
                        .name
                        .clone()
                        .unwrap_or_else(|| p.file.display().to_string()),
                );
                if let Job::Rollback { target, .. } = &request.job {
                    title = format!("rollback to {target}: {title}");
                }
                let reload = ReloadPlan::from_playbook(
                    p.spec.reload.as_ref(),
                    p.spec.validate.as_ref(),
                    request.step_timeout,
                )
                .map_err(|e| p.error_in(&["reload", e.key], None, e.message))?;
                (title, steps, rollback, reload)
            }
            (Job::Command(command), None) => (
                crate::shell::one_line(&format!("exec: {command}")),
                vec![StepPlan::command(command, request.step_timeout)],
                Vec::new(),
                None,
            ),
            (Job::Reload(reload), None) => (
                "reload".to_string(),
                Vec::new(),
                Vec::new(),
                Some((**reload).clone()),
            ),
            (Job::Playbook(_) | Job::Rollback { .. } | Job::Releases(_), None) => {
                unreachable!("a playbook job always loads its playbook")
            }
        };

        let max_fail = rolling
            .as_ref()
            .and_then(|r| r.max_fail)
            .unwrap_or(FailLimit::Hosts(0))
            .allowed(hosts.len());
        let pause = rolling
            .as_ref()
            .and_then(|r| r.pause)
            .map_or(Duration::ZERO, |p| p.0);

        let mut plan = Plan {
            title,
            hosts,
            batches,
            max_fail,
            pause,
            steps,
            rollback,
            reload,
            release,
            finish: Vec::new(),
            hooks,
            renderer,
        };
        match (&playbook, &request.job) {
            (Some(playbook), _) => {
                plan.decide_when(playbook)?;
                plan.check_templates(playbook)?;
            }
            (None, Job::Command(command)) => plan.check_command(command)?,
            (None, Job::Reload(_)) => plan.check_reload_flags()?,
            (None, _) => {}
        }
        plan.add_release_steps(&request.job);
        plan.check_release_paths()?;
        Ok(plan)
    }
}

/// Points at where the faulty connection variable is set: `-e`, the
/// playbook's `vars`, or the inventory (in that order of precedence).
fn target_error(
    inventory: &Inventory,
    host: &crate::inventory::Host,
    playbook: Option<&Playbook>,
    extra: &Vars,
    error: &target::TargetError,
) -> PlanError {
    let message = format!("host {}: {}", host.name, error.message);
    if let Some(at) = &error.config {
        return SourceError {
            message,
            ..(**at).clone()
        }
        .into();
    }
    if error.var == "inventory_hostname" {
        return inventory.name_error(host, &message).into();
    }
    if extra.contains_key(error.var) {
        return PlanError::Usage(format!("-e {}: {message}", error.var));
    }
    if let Some(playbook) = playbook.filter(|p| p.spec.vars.contains_key(error.var)) {
        return playbook
            .error_in(&["vars", error.var], None, message)
            .into();
    }
    match inventory.var_error(host, error.var, &message) {
        Some(error) => error.into(),
        None => SourceError::at(&inventory.file, &inventory.text, 1, 1, message).into(),
    }
}

fn select_in_playbook<'i>(
    inventory: &'i Inventory,
    playbook: &Playbook,
) -> Result<Vec<&'i crate::inventory::Host>, SourceError> {
    let pattern = &playbook.spec.hosts;
    inventory.select(pattern).map_err(|e| {
        let value = playbook
            .doc
            .root
            .get("hosts")
            .map_or(0, |node| node.content_offset());
        playbook
            .doc
            .error_at_offset(value + e.offset, format!("hosts: {}", e.message))
    })
}

#[cfg(test)]
mod tests;
