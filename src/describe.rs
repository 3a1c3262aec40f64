//! What `herd plan`, `herd hosts` and `herd lab` print: results, for stdout.

use std::fmt::Write as _;

use serde_json::{json, Value};

use crate::inventory::Inventory;
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
                plan.renderer.secrets().mask_name(&step.name),
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
            // What a capture will hold, as herd shows it; `real` stands for
            // the values the run will have, so a step using a secret (one
            // captured into a secret name too) shows the form it runs in.
            let mut real = (*host.vars).clone();
            for step in &plan.steps {
                if let Some(name) = &step.capture {
                    let stand_in = serde_json::Value::String(format!("<{name}>"));
                    real.insert(name.clone(), stand_in.clone());
                    let shown = match host.secret_names.contains(name) {
                        true => serde_json::Value::String(crate::template::MASK.to_string()),
                        false => stand_in,
                    };
                    vars.insert(name.clone(), shown);
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
                            plan.renderer.secrets().mask_name(&step.name)
                        );
                        continue;
                    }
                    let uses = step.secret_uses(&plan.renderer, &real, &vars);
                    let rendered = match step.render_shown(&plan.renderer, &vars, &uses) {
                        Ok(Rendered::Run { command }) => command,
                        Ok(Rendered::Upload {
                            artifact,
                            dest,
                            mode,
                            ..
                        }) => crate::artifact::describe(&artifact, &dest, mode),
                        Err(error) => format!("<{error}>"),
                    };
                    let once = if step.once { " (once)" } else { "" };
                    let local = if step.local.is_some() { " (local)" } else { "" };
                    let name = plan.renderer.secrets().mask_name(&step.name);
                    let _ = writeln!(out, "    {label}{}. {name}{once}{local}", i + 1);
                    // A secret's value written out in the playbook itself
                    // (not through a variable) is masked too.
                    let rendered = plan.renderer.secrets().mask(&rendered);
                    for line in rendered.lines() {
                        let _ = writeln!(out, "       {line}");
                    }
                }
            }
            if let Some(stage) = &plan.reload {
                let said = match (
                    &stage.place,
                    stage.render_shown(&plan.renderer, &host.shown_vars),
                ) {
                    (_, Err(error)) => format!("<{error}>"),
                    (None, Ok(_)) => "none (validate only)".to_string(),
                    (Some(_), Ok(spec)) => spec.describe(),
                };
                let said = plan.renderer.secrets().mask(&said);
                let _ = writeln!(out, "    reload: {said}");
                if let (Some(_), Ok(spec)) = (
                    &stage.place,
                    stage.render_shown(&plan.renderer, &host.shown_vars),
                ) {
                    let _ = writeln!(out, "    signal: {}", spec.signal_line());
                    let _ = writeln!(out, "    booted: {}", spec.boot_wait());
                    let _ = writeln!(out, "    proofs: {}", spec.proofs());
                }
            }
        }
    }
    out
}

/// The positions in `plan.hosts` in the order `limit` selects the hosts
/// (without one, the order of `all`, as Ansible lists them).
pub fn selection_order(plan: &Plan, inventory: &Inventory, limit: Option<&str>) -> Vec<usize> {
    let mut order: Vec<usize> = (0..plan.hosts.len()).collect();
    if let Ok(selected) = inventory.select(limit.unwrap_or("all")) {
        let rank = |index: &usize| {
            let name = &plan.hosts[*index].name;
            selected.iter().position(|host| &host.name == name)
        };
        order.sort_by_key(rank);
    }
    order
}

/// Each host's login and address, and with `with_vars` its variables
/// (secrets as `***`).
pub fn hosts(plan: &Plan, order: &[usize], with_vars: bool) -> String {
    let mut out = String::new();
    let width = plan.hosts.iter().map(|h| h.name.len()).max().unwrap_or(0);
    for host in order.iter().map(|&i| &plan.hosts[i]) {
        let (user, address, port) = connection(host);
        // An IPv6 address in brackets, as ssh and URLs write it, so that its
        // last group is not read as the port.
        let address = if address.contains(':') {
            format!("[{address}]")
        } else {
            address
        };
        let _ = writeln!(out, "{:width$}  {user}@{address}:{port}", host.name);
        if with_vars {
            let vars = serde_json::to_string_pretty(&host.shown_vars).unwrap_or_default();
            for line in vars.lines() {
                let _ = writeln!(out, "    {line}");
            }
        }
    }
    out
}

/// Where herd logs in: user, address and port, each `***` when the
/// variable that sets it (`ansible_user`, `ansible_host`, `ansible_port`)
/// is secret.
fn connection(host: &crate::plan::PlannedHost) -> (String, String, String) {
    let t = &host.target;
    let shown = |var: &str, value: String| {
        if host.shown_vars.get(var) != host.vars.get(var) {
            "***".to_string()
        } else {
            value
        }
    };
    (
        shown("ansible_user", t.user.clone()),
        shown("ansible_host", t.address.clone()),
        shown("ansible_port", t.port.to_string()),
    )
}

/// The hosts as one JSON document: `{"hosts": [{"name", "groups",
/// "connection": {"user", "address", "port"}, "vars"}], "groups": {NAME:
/// [HOST]}}`. A host's `groups` are Ansible's `group_names` (sorted, without
/// `all`); `vars` are the inventory's variables merged for the host, secrets
/// as `***`. The top-level `groups` has every group of the inventory, with
/// all its hosts whatever the limit, in Ansible's order.
pub fn hosts_json(plan: &Plan, inventory: &Inventory, order: &[usize]) -> String {
    let hosts: Vec<Value> = order
        .iter()
        .map(|&i| {
            let host = &plan.hosts[i];
            let (groups, vars) = match inventory.hosts.iter().position(|h| h.name == host.name) {
                Some(at) => (
                    group_names(inventory, at),
                    shown_inventory_vars(&inventory.hosts[at].vars, &host.shown_vars),
                ),
                None => (Vec::new(), serde_json::Map::new()),
            };
            let (user, address, port) = connection(host);
            let port = port.parse::<u16>().map_or(Value::from(port), Value::from);
            json!({
                "name": host.name,
                "groups": groups,
                "connection": { "user": user, "address": address, "port": port },
                "vars": vars,
            })
        })
        .collect();
    // Every group's hosts in Ansible's order, as its `groups` variable has them.
    let groups: serde_json::Map<String, Value> = inventory
        .groups
        .iter()
        .map(|group| {
            let names: Vec<&str> = inventory
                .group_hosts(&group.name)
                .into_iter()
                .map(|i| inventory.hosts[i].name.as_str())
                .collect();
            (group.name.clone(), json!(names))
        })
        .collect();
    format!("{}\n", json!({ "hosts": hosts, "groups": groups }))
}

/// The groups host `at` belongs to, directly or through a child group,
/// sorted, without `all`.
fn group_names(inventory: &Inventory, at: usize) -> Vec<String> {
    let mut names: Vec<String> = inventory
        .groups
        .iter()
        .filter(|g| g.name != "all" && inventory.group_hosts(&g.name).contains(&at))
        .map(|g| g.name.clone())
        .collect();
    names.sort();
    names.dedup();
    names
}

/// The inventory's variables of a host, each as herd shows it (a secret
/// as `***`); what herd adds for templates is left out.
fn shown_inventory_vars(
    inventory_vars: &crate::inventory::Vars,
    shown: &crate::inventory::Vars,
) -> crate::inventory::Vars {
    inventory_vars
        .iter()
        .filter_map(|(name, _)| Some((name.clone(), shown.get(name)?.clone())))
        .collect()
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
        let unit = match host.server {
            crate::lab::AppServer::Gunicorn => unit,
            server => format!("{unit}  {server}"),
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
