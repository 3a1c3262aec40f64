//! The commands that read or act on hosts outside a rollout's playbook
//! steps: `hosts`, `check`, `unlock`, `audit`, `releases`, and `rollback`
//! (which reads every host's releases before it runs as a rollout).

use std::process::ExitCode;
use std::sync::Arc;

use super::{exit, request, rollout, runtime, ssh_connector, stdout, AppError, HANDSHAKES};
use super::{place_of, server_of};
use crate::cli::{AuditArgs, CheckArgs, Connecting, HostsArgs, Output, Targeting, UnlockArgs};
use crate::describe;
use crate::engine::audit::AuditSettings;
use crate::engine::lock::LockOwner;
use crate::engine::LockSettings;
use crate::inventory::Inventory;
use crate::plan::reload::ReloadPlan;
use crate::plan::{Job, Plan, PlanError, PlanRequest};

/// `herd hosts`: the targeted hosts in the order the pattern selects them,
/// how herd reaches each, and (with `--vars` or `--output json`) their
/// variables, secrets masked. Connects to nothing.
pub(super) fn list(args: HostsArgs) -> Result<ExitCode, AppError> {
    let path = args.targeting.inventory.clone();
    let limit = args.targeting.limit.clone();
    let request = PlanRequest {
        ssh_config: args.ssh_config,
        ..request(Job::Command(String::new()), args.targeting, None)
    };
    let plan = Plan::build(&request)?;
    // The plan holds the selected hosts and their connections; the
    // inventory, read again, their groups and the pattern's order.
    let inventory = Inventory::load(&path).map_err(PlanError::from)?;
    let order = describe::selection_order(&plan, &inventory, limit.as_deref());
    match args.output {
        Output::Human => stdout(&describe::hosts(&plan, &order, args.vars)),
        Output::Json => stdout(&describe::hosts_json(&plan, &inventory, &order)),
    }
    Ok(ExitCode::from(exit::OK))
}

/// `herd check`: a table of what a rollout would find; exit 1 if any host has a problem.
pub(super) fn check(args: CheckArgs) -> Result<ExitCode, AppError> {
    let job = match args.playbook {
        Some(playbook) => Job::Playbook(playbook),
        None => {
            let server = server_of(&args.server)?;
            let (place, delivery) = place_of(&args.master, None)?;
            Job::Reload(Box::new(ReloadPlan {
                server: server.name.to_string(),
                place: Some(place),
                delivery,
                signal: None,
                become_: false,
                become_user: None,
                preflight: None,
                preload: None,
                start: None,
                timeout: args.connecting.timeout,
                settle: Some(std::time::Duration::ZERO),
                http: None,
                run: None,
                command_timeout: args.connecting.timeout,
            }))
        }
    };
    let request = request(job, args.targeting, Some(&args.connecting));
    let plan = Plan::build(&request)?;
    let connector = Arc::new(ssh_connector(&args.connecting, &plan)?);
    let runtime = runtime()?;
    let checks = runtime.block_on(crate::check::check_all(&plan, connector, HANDSHAKES));
    match args.connecting.output {
        Output::Json => stdout(&format!(
            "{}\n",
            serde_json::to_string(&checks).unwrap_or_default()
        )),
        Output::Human => print!("{}", crate::check::render(&checks)),
    }
    let healthy = checks.iter().all(crate::check::HostCheck::healthy);
    Ok(ExitCode::from(if healthy {
        exit::OK
    } else {
        exit::FAILED
    }))
}

/// The plan of a command that runs no playbook and no command: the
/// targeted hosts and how to reach them (`unlock`, `audit`).
fn hosts_only(targeting: Targeting, connecting: &Connecting) -> Result<Plan, AppError> {
    let request = request(Job::Command(String::new()), targeting, Some(connecting));
    Ok(Plan::build(&request)?)
}

/// `herd rollback`: checks the playbook, reads every host's releases and
/// chooses the target; refuses (exit 1, no host touched) unless every host
/// can go there; then runs the rollback as `herd run` runs a playbook.
pub(super) fn rollback(args: crate::cli::RollbackArgs) -> Result<ExitCode, AppError> {
    let run = &args.run;
    if let Some(to) = &args.to {
        crate::release::check_id(to).map_err(|e| PlanError::Usage(format!("--to: {e}")))?;
    }
    let rollback_request = |target: String, current| PlanRequest {
        extra_vars: run.extra_vars.clone(),
        batch: run.batch.clone(),
        ..request(
            Job::Rollback {
                playbook: run.playbook.clone(),
                target,
                current,
            },
            run.targeting.clone(),
            Some(&run.connecting),
        )
    };
    // Bad input is found before any host is contacted, whatever the target.
    let stand_in = args.to.clone().unwrap_or_else(|| "previous".to_string());
    Plan::build(&rollback_request(stand_in, Default::default()))?;
    let (plan, found) = read_releases(
        &run.playbook,
        &run.extra_vars,
        &run.targeting,
        &run.connecting,
    )?;
    let target = match crate::releases::choose_target(&plan, &found, args.to.as_deref()) {
        Ok(target) => target,
        Err(refusal) => {
            eprintln!("error: {refusal}");
            return Ok(ExitCode::from(exit::FAILED));
        }
    };
    let current = plan
        .hosts
        .iter()
        .zip(&found)
        .filter_map(|(host, found)| {
            let found = found.as_ref().ok()?;
            Some((
                host.name.clone(),
                found.current_link.clone().unwrap_or_default(),
            ))
        })
        .collect();
    let playbook = run.playbook.display().to_string();
    let lock = LockSettings {
        owner: LockOwner::current(&playbook),
        wait: run.lock_wait,
        timeout: run.connecting.connect_timeout,
    };
    let audit = AuditSettings::current("rollback", &playbook, run.connecting.connect_timeout);
    rollout(
        &rollback_request(target, current),
        &run.connecting,
        Some(lock),
        Some(audit),
    )
}

/// `herd releases`: a row per host, drift flagged; exit 1 if a host could
/// not be read.
pub(super) fn releases(args: crate::cli::ReleasesArgs) -> Result<ExitCode, AppError> {
    let (plan, found) = read_releases(
        &args.playbook,
        &args.extra_vars,
        &args.targeting,
        &args.connecting,
    )?;
    let json = args.connecting.output == Output::Json;
    Ok(per_host_result(crate::releases::render(
        &plan, &found, json,
    )))
}

/// Prints a per-host result for stdout and each host that could not be
/// read on stderr; exit 1 if there was one.
fn per_host_result((text, failed): (String, Vec<(String, String)>)) -> ExitCode {
    for (host, error) in &failed {
        eprintln!("{host}: FAILED: {error}");
    }
    stdout(&text);
    ExitCode::from(if failed.is_empty() {
        exit::OK
    } else {
        exit::FAILED
    })
}

/// Every targeted host's releases, read over SSH, changing nothing.
fn read_releases(
    playbook: &std::path::Path,
    extra_vars: &[String],
    targeting: &Targeting,
    connecting: &Connecting,
) -> Result<(Plan, Vec<crate::releases::Found>), AppError> {
    let look = PlanRequest {
        extra_vars: extra_vars.to_vec(),
        ..request(
            Job::Releases(playbook.to_path_buf()),
            targeting.clone(),
            Some(connecting),
        )
    };
    let plan = Plan::build(&look)?;
    let connector = ssh_connector(connecting, &plan)?;
    let found = runtime()?.block_on(crate::releases::survey_all(
        &plan,
        &connector,
        connecting.connect_timeout,
    ));
    Ok((plan, found))
}

/// `herd unlock`: removes every targeted host's deploy lock; exit 1 if a
/// host could not be reached or its lock not removed.
pub(super) fn unlock(args: UnlockArgs) -> Result<ExitCode, AppError> {
    let plan = hosts_only(args.targeting, &args.connecting)?;
    let connector = ssh_connector(&args.connecting, &plan)?;
    let runtime = runtime()?;
    let timeout = args.connecting.connect_timeout;
    let outcomes = runtime.block_on(crate::unlock::unlock_all(&plan, &connector, timeout));
    stdout(&crate::unlock::render(&outcomes));
    let all_ok = outcomes.iter().all(|o| o.result.is_ok());
    Ok(ExitCode::from(if all_ok { exit::OK } else { exit::FAILED }))
}

/// `herd audit`: the last `--last` lines of each targeted host's audit
/// log, host name first; exit 1 if a host could not be reached or read.
pub(super) fn audit(args: AuditArgs) -> Result<ExitCode, AppError> {
    let plan = hosts_only(args.targeting, &args.connecting)?;
    let connector = ssh_connector(&args.connecting, &plan)?;
    let results = runtime()?.block_on(crate::audit::read_all(
        &plan,
        &connector,
        args.last,
        args.connecting.connect_timeout,
    ));
    let json = args.connecting.output == Output::Json;
    Ok(per_host_result(crate::audit::render(&plan, results, json)))
}
