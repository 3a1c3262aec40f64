//! A plan's share of `release:`: the variables herd sets on each host (the
//! release's path, id and manifest), and herd's own release steps around
//! the playbook's.

use serde_json::{json, Value};

use super::{Job, Plan, PlanError};
use crate::inventory::{Host, Vars};
use crate::playbook::Playbook;
use crate::release::{check_id, var, ReleasePlan};
use crate::template::{Kind, Renderer};

/// During `herd rollback`, `release` (and the variable `release.id` reads,
/// when it is one) names the target, above `-e`. `herd releases` reads only
/// the release path: a playbook whose variables need a release to render
/// gets a stand-in.
pub(super) fn release_targets(job: &Job, release: &ReleasePlan, extra: &mut Vars) {
    let names = std::iter::once(var::RELEASE.to_string()).chain(release.id_variable());
    match job {
        Job::Rollback { target, .. } => {
            for name in names {
                extra.insert(name, Value::String(target.clone()));
            }
        }
        Job::Releases(_) => {
            for name in names {
                extra.entry(name).or_insert(Value::String("-".into()));
            }
        }
        Job::Playbook(_) | Job::Command(_) | Job::Reload(_) => {}
    }
}

/// Which release a host's variables name.
pub(super) enum ReleaseId {
    /// `release.id` rendered on the host, `default` when it has none.
    Rendered { default: String },
    /// The target of `herd rollback`, and what the host's `current`
    /// named when herd read it.
    Fixed(String, String),
    /// `herd releases`: the path alone.
    PathOnly,
}

impl ReleaseId {
    pub(super) fn for_job(job: &Job, host: &str, default: &str) -> ReleaseId {
        match job {
            Job::Rollback {
                target, current, ..
            } => ReleaseId::Fixed(
                target.clone(),
                current.get(host).cloned().unwrap_or_default(),
            ),
            Job::Releases(_) => ReleaseId::PathOnly,
            _ => ReleaseId::Rendered {
                default: default.to_string(),
            },
        }
    }
}

/// Renders the release's path and id on `host` and sets herd's release
/// variables; a bad path or id points at it in the playbook.
#[allow(clippy::too_many_arguments)]
pub(super) fn release_vars(
    playbook: &Playbook,
    release: &ReleasePlan,
    renderer: &Renderer,
    host: &Host,
    vars: &mut Vars,
    secrets: &[String],
    extra: &Vars,
    id: ReleaseId,
) -> Result<(), PlanError> {
    let render = |key: &str, source: &str, vars: &Vars| {
        renderer.render(source, Kind::Plain, vars).map_err(|e| {
            let what = format!("release.{key} on host {}", host.name);
            super::checks::template_error(playbook, &["release", key], source, &e, &what)
        })
    };
    let path = render("path", &release.path, vars)?;
    if !path.starts_with('/') {
        return Err(playbook
            .error_in(
                &["release", "path"],
                None,
                format!(
                    "release.path is `{path}` on host {}: it must be an absolute path",
                    host.name
                ),
            )
            .into());
    }
    let id = match (id, &release.id) {
        (ReleaseId::PathOnly, _) => {
            vars.insert(var::PATH.to_string(), Value::String(path));
            return Ok(());
        }
        (ReleaseId::Fixed(id, expect), _) => {
            vars.insert(var::EXPECT.to_string(), Value::String(expect));
            id
        }
        (ReleaseId::Rendered { .. }, Some(source)) => render("id", source, vars)?,
        (ReleaseId::Rendered { default }, None) => default,
    };
    if let Err(why) = check_id(&id) {
        return Err(playbook
            .error_in(
                &["release", "id"],
                None,
                format!("{why} (on host {})", host.name),
            )
            .into());
    }
    let shown_extra: serde_json::Map<String, Value> = extra
        .iter()
        .filter(|(name, _)| !secrets.contains(name))
        .map(|(name, value)| (name.clone(), value.clone()))
        .collect();
    let user = crate::engine::lock::os_account();
    let controller = crate::engine::lock::controller_name();
    let commit = ["GITHUB_SHA", "CI_COMMIT_SHA"]
        .iter()
        .find_map(|name| std::env::var(name).ok().filter(|v| !v.is_empty()));
    let manifest = json!({
        "id": id,
        "created": crate::engine::lock::now_utc(),
        "user": user,
        "controller": controller,
        "playbook": playbook.file.display().to_string(),
        "extra_vars": shown_extra,
        "commit": commit,
    });
    release.host_vars(vars, &path, &id, &manifest, &format!("{user}@{controller}"));
    Ok(())
}

impl Plan {
    /// Two inventory names for one machine and one release path would build
    /// and switch the same directories at once: refused.
    pub(super) fn check_release_paths(&self) -> Result<(), PlanError> {
        if self.release.is_none() {
            return Ok(());
        }
        let mut seen: std::collections::HashMap<(&str, u16, &str), &str> = Default::default();
        for host in &self.hosts {
            let Some(Value::String(path)) = host.vars.get(var::PATH) else {
                continue;
            };
            let key = (
                host.target.address.as_str(),
                host.target.port,
                path.as_str(),
            );
            if let Some(first) = seen.insert(key, &host.name) {
                return Err(PlanError::Usage(format!(
                    "hosts {first} and {} are one machine ({}:{}) with one release path {path}: \
                     herd would build and switch it twice at once; target one of them (-l), \
                     or give them different release paths",
                    host.name, host.target.address, host.target.port
                )));
            }
        }
        Ok(())
    }

    /// herd's release steps around the playbook's (checked already).
    pub(super) fn add_release_steps(&mut self, job: &Job) {
        let Some(release) = &self.release else {
            return;
        };
        match job {
            Job::Playbook(_) => {
                self.steps.insert(0, release.prepare_step());
                self.steps.push(release.switch_step());
                self.rollback.insert(0, release.restore_step());
                self.finish.push(release.prune_step());
            }
            Job::Rollback { .. } => {
                self.steps = vec![release.rollback_switch_step()];
                self.rollback = vec![release.restore_step()];
            }
            Job::Releases(_) | Job::Command(_) | Job::Reload(_) => {}
        }
    }
}
