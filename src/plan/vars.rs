//! A host's variables: `-e` pairs, the playbook's `vars` (templates, in
//! order), secrets marked by name, and the ssh client config to read.

use std::path::{Path, PathBuf};

use serde_json::Value;

use super::checks::template_error;
use super::PlanError;
use crate::inventory::Vars;
use crate::playbook::Playbook;
use crate::source::SourceError;
use crate::ssh_config::SshConfig;
use crate::template::{Kind, Renderer};

/// Play vars are templates over the host's variables, in order; `-e` wins.
pub(super) fn add_play_vars(
    playbook: &Playbook,
    renderer: &Renderer,
    vars: &mut Vars,
    extra: &Vars,
) -> Result<(), SourceError> {
    for (name, value) in &playbook.spec.vars {
        if extra.contains_key(name) {
            continue;
        }
        let value = match value {
            Value::String(source) => {
                let rendered = renderer.render(source, Kind::Plain, vars).map_err(|e| {
                    let what = format!("vars.{name}");
                    template_error(playbook, &["vars", name], source, &e, &what)
                })?;
                Value::String(rendered)
            }
            other => other.clone(),
        };
        vars.insert(name.clone(), value);
    }
    Ok(())
}

/// The ssh client config: `-F FILE` must exist; `~/.ssh/config` may not.
/// A line of it (or of a file it includes) that herd cannot read is an
/// input error at that line.
pub(super) fn read_ssh_config(given: Option<&Path>) -> Result<Option<SshConfig>, PlanError> {
    let home = std::env::var_os("HOME").map(PathBuf::from);
    let path = match (given, &home) {
        (Some(path), _) => path.to_path_buf(),
        (None, Some(home)) => home.join(".ssh/config"),
        (None, None) => return Ok(None),
    };
    if given.is_none() && !path.exists() {
        return Ok(None);
    }
    let home = home.unwrap_or_else(|| PathBuf::from("/"));
    match SshConfig::load(&path, &home) {
        Ok(config) => Ok(Some(config)),
        Err(e) if e.line == 0 && given.is_some() => Err(PlanError::Usage(format!(
            "-F {}: {}",
            path.display(),
            e.message
        ))),
        Err(e) if e.line == 0 => Err(PlanError::Usage(format!(
            "{}: {}",
            e.file.display(),
            e.message
        ))),
        Err(e) => Err(PlanError::Source(SourceError::at(
            &e.file, &e.text, e.line, e.column, e.message,
        ))),
    }
}

/// Variables named in `herd_secret_vars` (a list, in the inventory, the
/// playbook's vars or `-e`) hold secrets: their values are masked everywhere.
pub(super) fn mark_secrets(vars: &Vars, secrets: &crate::template::Secrets) {
    let Some(Value::Array(names)) = vars.get("herd_secret_vars") else {
        return;
    };
    for name in names.iter().filter_map(Value::as_str) {
        match vars.get(name) {
            Some(Value::String(value)) => secrets.record(value),
            Some(Value::Number(value)) => secrets.record(&value.to_string()),
            _ => {}
        }
    }
}

pub(super) fn parse_extra_vars(pairs: &[String]) -> Result<Vars, PlanError> {
    let mut vars = Vars::new();
    for pair in pairs {
        let Some((name, value)) = pair.split_once('=') else {
            return Err(PlanError::Usage(format!("-e {pair}: expected KEY=VALUE")));
        };
        if !crate::playbook::is_identifier(name) {
            return Err(PlanError::Usage(format!(
                "-e {pair}: `{name}` is not a valid variable name"
            )));
        }
        if crate::playbook::RESERVED_VARS.contains(&name) {
            return Err(PlanError::Usage(format!(
                "-e {pair}: `{name}` is a name herd sets itself and cannot be given"
            )));
        }
        vars.insert(name.to_string(), Value::String(value.to_string()));
    }
    Ok(vars)
}
