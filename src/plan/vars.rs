//! A host's variables: `-e` pairs, the playbook's `vars` (templates, in
//! order), secrets marked by name, and the ssh client config to read.

use std::path::{Path, PathBuf};

use serde_json::Value;

use super::checks::template_error;
use super::PlanError;
use crate::inventory::{Host, Inventory, Vars, SECRET_VARS};
use crate::playbook::Playbook;
use crate::source::SourceError;
use crate::ssh_config::SshConfig;
use crate::template::{leaf_texts, masked_value, Kind, Renderer, MASK};

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

/// The variables named in `herd_secret_vars`: the union of its values at
/// every level (inventory groups and host, the playbook's vars, `-e`), so a
/// name declared secret anywhere stays secret. Each value is one name, names
/// separated by commas or spaces, or a list of names.
pub(super) fn secret_names(
    inventory: &Inventory,
    host: &Host,
    playbook: Option<&Playbook>,
    renderer: &Renderer,
    vars: &Vars,
    extra: &Vars,
) -> Result<Vec<String>, PlanError> {
    let mut names: Vec<String> = Vec::new();
    let mut add = |found: Vec<String>| {
        for name in found {
            if !names.contains(&name) {
                names.push(name);
            }
        }
    };
    for (value, at) in &host.secret_vars {
        add(names_in(value).map_err(|message| {
            SourceError::at(
                &inventory.file,
                &inventory.text,
                at.line,
                at.column,
                message,
            )
        })?);
    }
    if let Some(playbook) = playbook {
        if let Some(value) = playbook.spec.vars.get(SECRET_VARS) {
            let value = match value {
                Value::String(source) => renderer
                    .render(source, Kind::Plain, vars)
                    .map_or_else(|_| value.clone(), Value::String),
                other => other.clone(),
            };
            add(names_in(&value)
                .map_err(|message| playbook.error_in(&["vars", SECRET_VARS], None, message))?);
        }
    }
    if let Some(value) = extra.get(SECRET_VARS) {
        add(names_in(value).map_err(|message| {
            PlanError::Usage(format!(
                "-e {SECRET_VARS}={}: {message}",
                value.as_str().unwrap_or_default()
            ))
        })?);
    }
    Ok(names)
}

/// The names one value of `herd_secret_vars` declares.
fn names_in(value: &Value) -> Result<Vec<String>, String> {
    let wrong = |what: &str| {
        format!("herd_secret_vars must be a variable name or a list of names, not {what}")
    };
    let valid = |name: &str| {
        if crate::playbook::is_identifier(name) {
            Ok(name.to_string())
        } else {
            Err(format!(
                "herd_secret_vars: `{name}` is not a valid variable name"
            ))
        }
    };
    match value {
        Value::Null => Ok(Vec::new()),
        Value::String(text) => text
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|name| !name.is_empty())
            .map(valid)
            .collect(),
        Value::Array(names) => names
            .iter()
            .map(|name| match name {
                Value::String(name) => valid(name),
                other => Err(wrong(&format!("a list holding {}", kind(other)))),
            })
            .collect(),
        other => Err(wrong(kind(other))),
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
        for text in vars.get(name).map(leaf_texts).unwrap_or_default() {
            secrets.record(&text);
        }
    }
}

/// A host's variables as herd shows them: each secret variable is `***`
/// (a mapping or list keeps its shape, every leaf `***`),
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
            *value = masked_value(value);
        }
    }
    if let Some(playbook) = playbook {
        for (name, value) in &playbook.spec.vars {
            if extra.contains_key(name) {
                continue;
            }
            let value = if names.contains(name) {
                masked_value(vars.get(name).unwrap_or(value))
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
        if crate::playbook::RESERVED_VARS.contains(&name)
            || crate::template::MAGIC_VARS.contains(&name)
        {
            return Err(PlanError::Usage(format!(
                "-e {pair}: `{name}` is a name herd sets itself and cannot be given"
            )));
        }
        vars.insert(name.to_string(), Value::String(value.to_string()));
    }
    Ok(vars)
}
