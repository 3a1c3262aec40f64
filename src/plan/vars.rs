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
use crate::template::{Kind, Renderer, MASK};

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

/// The variables named in `herd_secret_vars` (set in the inventory, the
/// playbook's vars or `-e`): one name, or a list of names. Anything else is
/// a mistake the caller points at.
pub(super) fn secret_names(vars: &Vars) -> Result<Vec<String>, String> {
    let wrong = |what: &str| {
        format!("herd_secret_vars must be a variable name or a list of names, not {what}")
    };
    match vars.get("herd_secret_vars") {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(name)) => Ok(vec![name.clone()]),
        Some(Value::Array(names)) => names
            .iter()
            .map(|name| match name {
                Value::String(name) => Ok(name.clone()),
                other => Err(wrong(&format!("a list holding {}", kind(other)))),
            })
            .collect(),
        Some(other) => Err(wrong(kind(other))),
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

/// Records the values of the secret variables, so what hosts say is masked.
pub(super) fn mark_secrets(vars: &Vars, names: &[String], secrets: &crate::template::Secrets) {
    for name in names {
        match vars.get(name) {
            Some(Value::String(value)) => secrets.record(value),
            Some(Value::Number(value)) => secrets.record(&value.to_string()),
            _ => {}
        }
    }
}

/// A host's variables as herd shows them: each secret variable is `***`,
/// and a play var made from one is rendered again with `***` in its place
/// (`postgres://app:***@db`). `base` is what the play vars were rendered
/// over; `vars` the result.
pub(super) fn shown_vars(
    playbook: Option<&Playbook>,
    renderer: &Renderer,
    base: &Vars,
    vars: &Vars,
    names: &[String],
    extra: &Vars,
) -> Vars {
    let masked = || Value::String(MASK.to_string());
    let mut shown = base.clone();
    for name in names {
        if let Some(value) = shown.get_mut(name) {
            *value = masked();
        }
    }
    if let Some(playbook) = playbook {
        for (name, value) in &playbook.spec.vars {
            if extra.contains_key(name) {
                continue;
            }
            let value = if names.contains(name) {
                masked()
            } else if let Value::String(source) = value {
                renderer
                    .render_shown(source, Kind::Plain, &shown)
                    .map_or_else(|_| masked(), Value::String)
            } else {
                value.clone()
            };
            shown.insert(name.clone(), value);
        }
    }
    for (name, value) in vars {
        shown.entry(name.clone()).or_insert_with(|| value.clone());
    }
    shown
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
