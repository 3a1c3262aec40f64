//! `herd releases` (each host's current and previous release, and drift
//! across the fleet) and `herd rollback`'s look before it changes anything:
//! which release each host goes back to, and whether every host has it.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use futures::future::join_all;
use serde_json::json;

use crate::plan::Plan;
use crate::release::survey::{self, HostReleases};
use crate::release::var;
use crate::transport::{Connection, Connector};

/// A host's releases, or why they could not be read.
pub type Found = Result<HostReleases, String>;

/// Each host's releases, in the plan's order, or why they could not be read.
pub async fn survey_all<C: Connector>(
    plan: &Plan,
    connector: &C,
    timeout: std::time::Duration,
) -> Vec<Found> {
    let release = plan.release.as_ref();
    join_all(plan.hosts.iter().map(|host| async move {
        let path = match host.vars.get(var::PATH) {
            Some(serde_json::Value::String(path)) => path.clone(),
            _ => return Err("no release path".to_string()),
        };
        let script = survey::script(
            &path,
            release.is_some_and(|r| r.become_),
            release.and_then(|r| r.become_user.as_deref()),
        );
        let connection = connector
            .connect(&host.target)
            .await
            .map_err(|e| e.to_string())?;
        let output = connection.exec(&script, timeout).await;
        connection.close().await;
        let output = output.map_err(|e| e.to_string())?;
        if !output.success() {
            let stderr = String::from_utf8_lossy(&output.stderr);
            return Err(format!(
                "reading {path} failed: {}",
                crate::shell::tail(&stderr, 3).trim()
            ));
        }
        Ok(survey::parse(&String::from_utf8_lossy(&output.stdout)))
    }))
    .await
}

/// The release each host's `current` names, with the hosts on it.
fn fleet_current<'a>(plan: &'a Plan, results: &'a [Found]) -> BTreeMap<String, Vec<&'a str>> {
    let mut on: BTreeMap<String, Vec<&str>> = BTreeMap::new();
    for (host, result) in plan.hosts.iter().zip(results) {
        if let Ok(found) = result {
            let current = found.current.clone().unwrap_or_else(|| "-".to_string());
            on.entry(current).or_default().push(&host.name);
        }
    }
    on
}

/// The table (or JSON) for stdout, and the hosts that could not be read.
pub fn render(plan: &Plan, results: &[Found], json: bool) -> (String, Vec<(String, String)>) {
    let failed: Vec<(String, String)> = plan
        .hosts
        .iter()
        .zip(results)
        .filter_map(|(host, result)| {
            result
                .as_ref()
                .err()
                .map(|e| (host.name.clone(), e.clone()))
        })
        .collect();
    let on = fleet_current(plan, results);
    let drift = on.len() > 1;
    if json {
        let hosts: Vec<serde_json::Value> = plan
            .hosts
            .iter()
            .zip(results)
            .map(|(host, result)| match result {
                Ok(found) => json!({
                    "host": host.name,
                    "current": found.current,
                    "current_link": found.current_link,
                    "previous": found.previous,
                    "kept": found.releases.len(),
                    "releases": found.releases,
                    "switched_at": found.switched_at,
                    "switched_by": found.switched_by,
                    "switched_with": found.switched_with,
                    "switched_elsewhere": found.switched_elsewhere,
                }),
                Err(error) => json!({ "host": host.name, "error": error }),
            })
            .collect();
        let text = json!({ "hosts": hosts, "drift": drift, "current": on }).to_string();
        return (format!("{text}\n"), failed);
    }
    let mut rows = vec![[
        "HOST".to_string(),
        "CURRENT".to_string(),
        "PREVIOUS".to_string(),
        "KEPT".to_string(),
        "SWITCHED".to_string(),
        "BY".to_string(),
    ]];
    let dash = |value: &Option<String>| value.clone().unwrap_or_else(|| "-".to_string());
    for (host, result) in plan.hosts.iter().zip(results) {
        let row = match result {
            Ok(found) if !found.exists => [
                host.name.clone(),
                "(no releases)".to_string(),
                "-".into(),
                "0".into(),
                "-".into(),
                "-".into(),
            ],
            Ok(found) => {
                let current = match (&found.current, &found.current_link) {
                    (Some(id), _) => id.clone(),
                    (None, Some(link)) => format!("-> {link}"),
                    (None, None) => "-".to_string(),
                };
                let previous = if found.switched_elsewhere {
                    "? (switched outside herd)".to_string()
                } else {
                    dash(&found.previous)
                };
                let by = match (&found.switched_by, &found.switched_with) {
                    (Some(by), Some(with)) => format!("{by} ({with})"),
                    (by, _) => dash(by),
                };
                [
                    host.name.clone(),
                    current,
                    previous,
                    found.releases.len().to_string(),
                    dash(&found.switched_at),
                    by,
                ]
            }
            Err(_) => [
                host.name.clone(),
                "(unreadable)".to_string(),
                "-".into(),
                "-".into(),
                "-".into(),
                "-".into(),
            ],
        };
        // What the host's files say, shown on one line without escapes.
        rows.push(row.map(|cell| crate::shell::one_line(&cell)));
    }
    let mut widths = [0usize; 6];
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut text = String::new();
    for row in &rows {
        let mut line = String::new();
        for (i, (cell, width)) in row.iter().zip(widths).enumerate() {
            if i + 1 == row.len() {
                line.push_str(cell);
            } else {
                let _ = write!(line, "{cell:<width$}  ");
            }
        }
        let _ = writeln!(text, "{}", line.trim_end());
    }
    let read = results.iter().filter(|r| r.is_ok()).count();
    if drift {
        let parts: Vec<String> = on
            .iter()
            .map(|(release, hosts)| {
                let release = crate::shell::one_line(release);
                format!("{release} on {} ({})", hosts.len(), hosts.join(", "))
            })
            .collect();
        let _ = writeln!(
            text,
            "\nDRIFT: the fleet is on {} releases: {}",
            on.len(),
            parts.join("; ")
        );
    } else if let Some(release) = on.keys().next() {
        let release = crate::shell::one_line(release);
        let _ = writeln!(text, "\nall {read} host(s) read are on {release}");
    }
    (text, failed)
}

/// The release `herd rollback` switches every host to: `to`, or the
/// previous release, which must be the same on every host. Every host must
/// have it; the error names each host that cannot go there, and why.
pub fn choose_target(plan: &Plan, results: &[Found], to: Option<&str>) -> Result<String, String> {
    let mut problems = Vec::new();
    let mut previous: BTreeMap<String, Vec<&str>> = BTreeMap::new();
    for (host, result) in plan.hosts.iter().zip(results) {
        match result {
            Err(error) => problems.push(format!(
                "  {}: cannot read its releases: {error}",
                host.name
            )),
            Ok(found) => match to {
                Some(to) if found.has(to) => {}
                Some(to) => problems.push(format!("  {}: has no release {to}", host.name)),
                // The previous release of a rollback is the release it left:
                // going there is a choice to name.
                None if found.switched_with.as_deref() == Some("rollback") => {
                    problems.push(format!(
                    "  {}: its last switch was a rollback (from {}): another would go back there",
                    host.name,
                    found.previous.as_deref().unwrap_or("?")
                ))
                }
                None => match found.rollback_target() {
                    Ok(target) => previous.entry(target).or_default().push(&host.name),
                    Err(why) => problems.push(format!("  {}: {why}", host.name)),
                },
            },
        }
    }
    if let Some(to) = to {
        if problems.is_empty() {
            return Ok(to.to_string());
        }
        return Err(format!(
            "cannot roll back to {to}: {} host(s) cannot go there, so no host was touched:\n{}",
            problems.len(),
            problems.join("\n")
        ));
    }
    if !problems.is_empty() {
        return Err(format!(
            "cannot roll back: {} host(s) have no previous release to go back to, so no host was touched:\n{}\n\
             name the release with --to ID",
            problems.len(),
            problems.join("\n")
        ));
    }
    if previous.len() > 1 {
        let parts: Vec<String> = previous
            .iter()
            .map(|(release, hosts)| format!("  {release}: {}", hosts.join(", ")))
            .collect();
        return Err(format!(
            "cannot roll back: the hosts' previous releases differ, so no host was touched:\n{}\n\
             name the release with --to ID",
            parts.join("\n")
        ));
    }
    // Every host has its previous release: it was current before the last switch,
    // and pruning keeps it. Checked all the same, as a person may have removed it.
    let target = previous.into_keys().next().unwrap_or_default();
    let lacking: Vec<String> = plan
        .hosts
        .iter()
        .zip(results)
        .filter(|(_, r)| r.as_ref().is_ok_and(|found| !found.has(&target)))
        .map(|(host, _)| format!("  {}: has no release {target}", host.name))
        .collect();
    if lacking.is_empty() {
        Ok(target)
    } else {
        Err(format!(
            "cannot roll back to {target}: {} host(s) cannot go there, so no host was touched:\n{}",
            lacking.len(),
            lacking.join("\n")
        ))
    }
}
