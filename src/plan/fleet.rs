//! What templates know of the fleet: the inventory's groups, this run's
//! hosts and batches, and every host's variables (`hostvars`).

use std::sync::Arc;

use serde_json::Value;

use super::vars::{mark_secrets, secret_names, shown_vars};
use super::{PlanError, PlannedHost};
use crate::inventory::{Host, Inventory, Vars};
use crate::playbook::Playbook;
use crate::template::{Fleet, HostEntry, Renderer};

/// The groups (each with its hosts in Ansible's order), the run's hosts
/// (`selected`, in order) and its batches (indexes into `selected`).
pub(super) fn of_run(inventory: &Inventory, selected: &[&Host], batches: &[Vec<usize>]) -> Fleet {
    let groups = inventory
        .groups
        .iter()
        .map(|group| {
            let hosts = inventory
                .group_hosts(&group.name)
                .into_iter()
                .map(|i| inventory.hosts[i].name.clone())
                .collect();
            (group.name.clone(), hosts)
        })
        .collect();
    let mut fleet = Fleet::with_groups(groups);
    let names = |indexes: &[usize]| -> Vec<String> {
        indexes.iter().map(|&i| selected[i].name.clone()).collect()
    };
    let all: Vec<usize> = (0..selected.len()).collect();
    fleet.set_play(names(&all), batches.iter().map(|b| names(b)).collect());
    fleet
}

/// `hostvars`: every inventory host's variables. A host of this run has
/// the variables its templates see; another host its inventory variables
/// and `-e`. Each also has its `group_names` and `inventory_hostname_short`
/// (added as a template reads them).
/// Their secret variables are marked and shown as `***`, as the run's own.
pub(super) fn add_hostvars(
    inventory: &Inventory,
    planned: &[PlannedHost],
    playbook: Option<&Playbook>,
    renderer: &Renderer,
    extra: &Vars,
) -> Result<(), PlanError> {
    let group_names = group_names(inventory);
    let planned: std::collections::HashMap<&str, &PlannedHost> =
        planned.iter().map(|p| (p.name.as_str(), p)).collect();
    let mut table = Vec::with_capacity(inventory.hosts.len());
    for (host, names) in inventory.hosts.iter().zip(group_names) {
        let (vars, shown) = match planned.get(host.name.as_str()) {
            // Shared with the plan, not copied.
            Some(planned) => (planned.vars.clone(), planned.shown_vars.clone()),
            None => {
                let mut vars = host.vars.clone();
                vars.insert(
                    "inventory_hostname".into(),
                    Value::String(host.name.clone()),
                );
                vars.extend(extra.clone());
                let secrets = secret_names(inventory, host, playbook, renderer, &vars, extra)?;
                mark_secrets(&vars, &secrets, renderer.secrets());
                let shown = shown_vars(None, renderer, &vars, &vars, &secrets, extra);
                (Arc::new(vars), Arc::new(shown))
            }
        };
        table.push(HostEntry::new(host.name.clone(), vars, shown, names));
    }
    renderer.update_fleet(|fleet| fleet.set_hostvars(table));
    Ok(())
}

/// Each host's groups (by position in the inventory), sorted, without
/// `all` (`ungrouped` for a host in no other group).
fn group_names(inventory: &Inventory) -> Vec<Vec<String>> {
    let mut names = vec![Vec::new(); inventory.hosts.len()];
    for group in inventory.groups.iter().filter(|g| g.name != "all") {
        for host in inventory.group_hosts(&group.name) {
            names[host].push(group.name.clone());
        }
    }
    for list in &mut names {
        list.sort_unstable();
        list.dedup();
    }
    names
}
