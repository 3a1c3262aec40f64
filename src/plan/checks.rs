//! Checking every template of a plan on every host before anything runs, so
//! an undefined variable stops the run with its file, line and column.

use std::path::Path;

use serde_json::Value;

use super::reload::ReloadPlan;
use super::step::Action;
use super::Plan;
use crate::playbook::Playbook;
use crate::source::SourceError;
use crate::template::{find_unprotected, Kind, TemplateError};

impl Plan {
    /// `herd exec` commands are templates too (`cat {{ app_dir }}/RELEASE`).
    pub(super) fn check_command(&self, command: &str) -> Result<(), SourceError> {
        if let Some(found) = find_unprotected(command) {
            return Err(SourceError::at_offset(
                Path::new("command"),
                command,
                found.offset,
                found.message(),
            ));
        }
        for host in &self.hosts {
            if let Err(error) = self.renderer.render(command, Kind::Shell, &host.vars) {
                let offset = error.needle().and_then(|n| command.find(n)).unwrap_or(0);
                let file = Path::new("command");
                return Err(SourceError::at_offset(
                    file,
                    command,
                    offset,
                    on_host(&error, &host.name),
                ));
            }
        }
        Ok(())
    }

    /// `herd reload` flags are templates (`--pidfile '{{ gunicorn_pidfile }}'`).
    pub(super) fn check_reload_flags(&self) -> Result<(), SourceError> {
        let Some(reload) = &self.reload else {
            return Ok(());
        };
        for (field, source, kind) in reload.templates() {
            if let (Kind::Shell, Some(found)) = (kind, find_unprotected(source)) {
                let flag = format!("--{}", field.rsplit('.').next().unwrap_or(field));
                return Err(SourceError::at_offset(
                    Path::new(&flag),
                    source,
                    found.offset,
                    found.message(),
                ));
            }
        }
        for host in &self.hosts {
            for (field, source, kind) in reload.templates() {
                if let Err(error) = self.renderer.render(source, kind, &host.vars) {
                    let offset = error.needle().and_then(|n| source.find(n)).unwrap_or(0);
                    let flag = format!("--{}", field.rsplit('.').next().unwrap_or(field));
                    return Err(SourceError::at_offset(
                        Path::new(&flag),
                        source,
                        offset,
                        on_host(&error, &host.name),
                    ));
                }
            }
            if let Err((key, template, problem)) =
                reload.check_server(&self.renderer, &host.vars, &host.shown_vars)
            {
                return Err(SourceError::at_offset(
                    Path::new(&format!("--{key}")),
                    &template,
                    0,
                    format!("{problem} (on host {})", host.name),
                ));
            }
            if let Err((url, problem)) =
                reload.check_url(&self.renderer, &host.vars, &host.shown_vars)
            {
                return Err(SourceError::at_offset(
                    Path::new("--http"),
                    &url,
                    0,
                    format!("{problem} (on host {})", host.name),
                ));
            }
            if let Err((key, template, problem)) =
                reload.check_names(&self.renderer, &host.vars, &host.shown_vars)
            {
                return Err(SourceError::at_offset(
                    Path::new(&format!("--{key}")),
                    &template,
                    0,
                    format!("{problem} (on host {})", host.name),
                ));
            }
        }
        Ok(())
    }

    /// Renders every template on every host, with captured variables standing
    /// in as placeholders, so an undefined variable stops the run before it starts.
    pub(super) fn check_templates(&self, playbook: &Playbook) -> Result<(), SourceError> {
        self.check_quoting(playbook)?;
        let captures: Vec<&str> = self
            .steps
            .iter()
            .filter_map(|s| s.capture.as_deref())
            .collect();
        for (host_index, host) in self.hosts.iter().enumerate() {
            let mut vars = (*host.vars).clone();
            for name in &captures {
                vars.entry(name.to_string())
                    .or_insert_with(|| Value::String(format!("<{name}>")));
            }
            for (section, steps) in [("steps", &self.steps), ("rollback", &self.rollback)] {
                for (index, step) in steps.iter().enumerate() {
                    // A step skipped here never renders here: its `when:`
                    // may guard a variable only some hosts have.
                    if step.when.skips(host_index) {
                        continue;
                    }
                    for (field, source) in step.templates() {
                        let kind = if field == "run" {
                            Kind::Shell
                        } else {
                            Kind::Plain
                        };
                        if let Err(error) = self.renderer.render(source, kind, &vars) {
                            let what =
                                format!("{field} of {section}[{index}] on host {}", host.name);
                            let index = index.to_string();
                            let path: &[&str] = match field {
                                "dest" => &[section, &index, step.action_key(), "dest"],
                                _ => &[section, &index, field],
                            };
                            return Err(template_error(playbook, path, source, &error, &what));
                        }
                    }
                }
            }
            let reload_templates = self
                .reload
                .as_ref()
                .map(ReloadPlan::templates)
                .unwrap_or_default();
            for (field, source, kind) in reload_templates {
                if let Err(error) = self.renderer.render(source, kind, &vars) {
                    let what = format!("{field} on host {}", host.name);
                    let path: Vec<&str> = field.split('.').collect();
                    return Err(template_error(playbook, &path, source, &error, &what));
                }
            }
            if let Some(reload) = &self.reload {
                if let Err((key, template, problem)) =
                    reload.check_server(&self.renderer, &vars, &host.shown_vars)
                {
                    return Err(playbook.error_in(
                        &["reload", key],
                        Some(&template),
                        format!("{problem} (reload.{key} on host {})", host.name),
                    ));
                }
                if let Err((template, problem)) = reload.check_preload(&self.renderer, &vars) {
                    return Err(playbook.error_in(
                        &["reload", "preload"],
                        Some(&template),
                        format!("{problem} (reload.preload on host {})", host.name),
                    ));
                }
                if let Err((url, problem)) =
                    reload.check_url(&self.renderer, &vars, &host.shown_vars)
                {
                    return Err(url_error(playbook, &url, &problem, &host.name));
                }
                if let Err((key, template, problem)) =
                    reload.check_names(&self.renderer, &vars, &host.shown_vars)
                {
                    return Err(playbook.error_in(
                        &["reload", key],
                        Some(&template),
                        format!("{problem} (reload.{key} on host {})", host.name),
                    ));
                }
            }
        }
        Ok(())
    }
}

impl Plan {
    /// Every shell template puts its values where herd's quoting protects
    /// them (see `template::shell_context`); checked once, for any host.
    fn check_quoting(&self, playbook: &Playbook) -> Result<(), SourceError> {
        let mut shell_templates: Vec<(String, Vec<String>, &str)> = Vec::new();
        for (section, steps) in [("steps", &self.steps), ("rollback", &self.rollback)] {
            for (index, step) in steps.iter().enumerate() {
                if let Action::Run(command) = &step.action {
                    shell_templates.push((
                        format!("run of {section}[{index}]"),
                        vec![section.to_string(), index.to_string(), "run".to_string()],
                        command.as_str(),
                    ));
                }
            }
        }
        let reload_templates = self
            .reload
            .as_ref()
            .map(ReloadPlan::templates)
            .unwrap_or_default();
        for (field, source, kind) in &reload_templates {
            if *kind == Kind::Shell {
                let path = field.split('.').map(str::to_string).collect();
                shell_templates.push((field.to_string(), path, *source));
            }
        }
        for (what, path, source) in shell_templates {
            if let Some(found) = find_unprotected(source) {
                // The rest of the template's line from the fault on is what
                // the playbook shows there (a folded or quoted scalar may not,
                // then the expression alone is looked for).
                let line_end = source[found.offset..]
                    .find('\n')
                    .map_or(source.len(), |n| found.offset + n);
                let rest = &source[found.offset..line_end];
                let path: Vec<&str> = path.iter().map(String::as_str).collect();
                let written = playbook
                    .doc
                    .root
                    .find(&path)
                    .and_then(|node| playbook.doc.text.get(node.content_offset()..node.end))
                    .unwrap_or("");
                let needle = if !rest.is_empty() && written.contains(rest) {
                    rest
                } else {
                    found.expression.as_str()
                };
                return Err(playbook.error_in(
                    &path,
                    Some(needle),
                    format!("{what}: {}", found.message()),
                ));
            }
        }
        Ok(())
    }
}

/// Points at `validate.http.url` in the playbook.
fn url_error(playbook: &Playbook, url: &str, problem: &str, host: &str) -> SourceError {
    playbook.error_in(
        &["validate", "http", "url"],
        Some(url),
        format!("{problem} (validate.http.url on host {host})"),
    )
}

/// Points at the template in the playbook, found by its `path` there, and
/// at the variable within it.
pub(super) fn template_error(
    playbook: &Playbook,
    path: &[&str],
    source: &str,
    error: &TemplateError,
    what: &str,
) -> SourceError {
    let mut path = path.to_vec();
    // A step's `env` is a mapping: the template is the entry holding `source`.
    if let Some(key) = playbook.doc.root.find(&path).and_then(|n| n.key_of(source)) {
        path.push(key);
    }
    let message = match error {
        // Found in the rendered command: the field as a whole is at fault.
        TemplateError::Unprotected { .. } => format!("{what}: {error}"),
        _ => format!("{error} in {what}"),
    };
    playbook.error_in(&path, error.needle(), message)
}

/// A template's error on one host, for a template given on the command line.
fn on_host(error: &TemplateError, host: &str) -> String {
    match error {
        TemplateError::Unprotected { .. } => format!("on host {host}: {error}"),
        _ => format!("{error} on host {host}"),
    }
}
