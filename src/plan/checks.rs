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
use crate::yaml;

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
                    format!("{error} on host {}", host.name),
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
                        format!("{error} on host {}", host.name),
                    ));
                }
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
        for host in &self.hosts {
            let mut vars = host.vars.clone();
            for name in &captures {
                vars.entry(name.to_string())
                    .or_insert_with(|| Value::String(format!("<{name}>")));
            }
            for (section, steps) in [("steps", &self.steps), ("rollback", &self.rollback)] {
                for (index, step) in steps.iter().enumerate() {
                    for (field, source) in step.templates() {
                        let kind = if field == "run" {
                            Kind::Shell
                        } else {
                            Kind::Plain
                        };
                        if let Err(error) = self.renderer.render(source, kind, &vars) {
                            let what =
                                format!("{field} of {section}[{index}] on host {}", host.name);
                            return Err(template_error(playbook, source, &error, &what));
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
                    return Err(template_error(playbook, source, &error, &what));
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
        let mut shell_templates = Vec::new();
        for (section, steps) in [("steps", &self.steps), ("rollback", &self.rollback)] {
            for (index, step) in steps.iter().enumerate() {
                if let Action::Run(command) = &step.action {
                    shell_templates.push((
                        format!("run of {section}[{index}]"),
                        section,
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
                let section = field.split('.').next().unwrap_or(field);
                shell_templates.push((field.to_string(), section, *source));
            }
        }
        for (what, section, source) in shell_templates {
            if let Some(found) = find_unprotected(source) {
                let from = yaml::locate_key(&playbook.text, section, 0).unwrap_or(0);
                let offset =
                    offset_in_playbook(playbook, source, found.offset, &found.expression, from);
                return Err(SourceError::at_offset(
                    &playbook.file,
                    &playbook.text,
                    offset,
                    format!("{what}: {}", found.message()),
                ));
            }
        }
        Ok(())
    }
}

/// Where byte `offset` of the template `source` is written in the playbook:
/// the template's line is looked for after `from`, then the expression.
fn offset_in_playbook(
    playbook: &Playbook,
    source: &str,
    offset: usize,
    expression: &str,
    from: usize,
) -> usize {
    let first_line = source.lines().next().unwrap_or(source);
    let start = yaml::locate(&playbook.text, first_line, from).unwrap_or(from);
    let line_start = source[..offset].rfind('\n').map_or(0, |n| n + 1);
    let line_end = source[offset..]
        .find('\n')
        .map_or(source.len(), |n| offset + n);
    let line = &source[line_start..line_end];
    if let Some(at) = yaml::locate(&playbook.text, line, start) {
        return at + (offset - line_start);
    }
    yaml::locate(&playbook.text, expression, start).unwrap_or(start)
}

/// Points at the template in the playbook, and at the variable within it.
pub(super) fn template_error(
    playbook: &Playbook,
    source: &str,
    error: &TemplateError,
    what: &str,
) -> SourceError {
    let first_line = source.lines().next().unwrap_or(source);
    let start = yaml::locate(&playbook.text, first_line, 0).unwrap_or(0);
    let offset = error
        .needle()
        .and_then(|needle| yaml::locate(&playbook.text, needle, start))
        .unwrap_or(start);
    SourceError::at_offset(
        &playbook.file,
        &playbook.text,
        offset,
        format!("{error} in {what}"),
    )
}
