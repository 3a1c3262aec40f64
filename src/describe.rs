//! What `herd plan`, `herd hosts` and `herd lab` print: results, for stdout.

use std::fmt::Write as _;

use crate::plan::step::Rendered;
use crate::plan::Plan;

/// The batches and each host's rendered steps (captures as `<name>`).
pub fn plan(plan: &Plan) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{}: {} host(s), {} batch(es), max_fail {}",
        plan.title,
        plan.hosts.len(),
        plan.batches.len(),
        plan.max_fail
    );
    // Which hosts each conditional step skips.
    for (label, steps) in [("step", &plan.steps), ("rollback step", &plan.rollback)] {
        for (i, step) in steps.iter().enumerate() {
            if step.when.conditions.is_empty() {
                continue;
            }
            let skipped: Vec<&str> = plan
                .hosts
                .iter()
                .enumerate()
                .filter(|(index, _)| step.when.skips(*index))
                .map(|(_, host)| host.name.as_str())
                .collect();
            let once = if step.once {
                " (once: decided on the host that runs it)"
            } else {
                ""
            };
            let hosts = if skipped.is_empty() {
                "no host".to_string()
            } else {
                format!(
                    "{} of {} host(s): {}",
                    skipped.len(),
                    plan.hosts.len(),
                    skipped.join(" ")
                )
            };
            let _ = writeln!(
                out,
                "{label} {}. {}: when {}{once}: skipped on {hosts}",
                i + 1,
                plan.renderer.secrets().mask(&step.name),
                plan.renderer.secrets().mask(&step.when.describe()),
            );
        }
    }
    for (number, batch) in plan.batches.iter().enumerate() {
        let names: Vec<&str> = batch.iter().map(|&i| plan.hosts[i].name.as_str()).collect();
        let _ = writeln!(
            out,
            "\nbatch {}/{}: {}",
            number + 1,
            plan.batches.len(),
            names.join(" ")
        );
        for &index in batch {
            let host = &plan.hosts[index];
            let _ = writeln!(out, "  {}:", host.name);
            // Rendered over the shown variables: a secret appears as `***`
            // wherever and however a template uses it.
            let mut vars = (*host.shown_vars).clone();
            for step in &plan.steps {
                if let Some(name) = &step.capture {
                    vars.insert(name.clone(), serde_json::Value::String(format!("<{name}>")));
                }
            }
            for (label, steps) in [
                ("", &plan.steps),
                ("rollback ", &plan.rollback),
                ("after a proven reload ", &plan.finish),
            ] {
                for (i, step) in steps.iter().enumerate() {
                    if step.when.skips(index) {
                        let _ = writeln!(
                            out,
                            "    {label}{}. {} (skipped: when is false)",
                            i + 1,
                            step.name
                        );
                        continue;
                    }
                    let rendered = match step.render_shown(&plan.renderer, &vars) {
                        Ok(Rendered::Run { command }) => command,
                        Ok(Rendered::Upload {
                            artifact,
                            dest,
                            mode,
                        }) => crate::artifact::describe(&artifact, &dest, mode),
                        Err(error) => format!("<{error}>"),
                    };
                    let once = if step.once { " (once)" } else { "" };
                    let local = if step.local.is_some() { " (local)" } else { "" };
                    let _ = writeln!(out, "    {label}{}. {}{once}{local}", i + 1, step.name);
                    for line in rendered.lines() {
                        let _ = writeln!(out, "       {line}");
                    }
                }
            }
            if let Some(stage) = &plan.reload {
                let said = match (&stage.place, stage.render(&plan.renderer, &host.shown_vars)) {
                    (_, Err(error)) => format!("<{error}>"),
                    (None, Ok(_)) => "none (validate only)".to_string(),
                    (Some(_), Ok(spec)) => spec.describe(),
                };
                let _ = writeln!(out, "    reload: {said}");
                if let (Some(_), Ok(spec)) =
                    (&stage.place, stage.render(&plan.renderer, &host.shown_vars))
                {
                    let _ = writeln!(out, "    booted: {}", spec.boot_wait());
                }
            }
        }
    }
    out
}

/// Each host's login and address, and with `with_vars` its variables
/// (secrets as `***`).
pub fn hosts(plan: &Plan, with_vars: bool) -> String {
    let mut out = String::new();
    let width = plan.hosts.iter().map(|h| h.name.len()).max().unwrap_or(0);
    for host in &plan.hosts {
        let t = &host.target;
        let _ = writeln!(
            out,
            "{:width$}  {}@{}:{}",
            host.name, t.user, t.address, t.port
        );
        if with_vars {
            let vars = serde_json::to_string_pretty(&host.shown_vars).unwrap_or_default();
            for line in vars.lines() {
                let _ = writeln!(out, "    {line}");
            }
        }
    }
    out
}

/// Each lab host and whether its sshd and app are up.
pub fn lab(info: &crate::lab::LabInfo) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "inventory: {}", info.inventory.display());
    for host in &info.hosts {
        let unit = match &host.unit {
            Some(unit) if host.unit_reload => format!("  unit {unit} (user, as {})", host.app_user),
            Some(unit) => format!("  unit {unit} (user, as {}, no ExecReload)", host.app_user),
            None => String::new(),
        };
        let unit = match (&host.container, &host.pid1) {
            (Some(container), Some(pid1)) => {
                format!("{unit}  container {container} (podman, PID 1 {pid1})")
            }
            _ => unit,
        };
        let _ = writeln!(
            out,
            "{}  ssh {}:{} ({})  http {}:{} ({}){unit}",
            host.name,
            host.address,
            host.ssh_port,
            if host.sshd_alive { "up" } else { "down" },
            host.address,
            host.http_port,
            if host.gunicorn_alive { "up" } else { "down" },
        );
    }
    out
}
