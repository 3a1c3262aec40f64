//! `when:` on a step, decided for every host before the run: which hosts
//! skip it is part of the plan (`herd plan` shows it), and a condition that
//! does not evaluate stops the run before any host is contacted.

use super::checks::template_error;
use super::Plan;
use crate::playbook::Playbook;
use crate::source::SourceError;

impl Plan {
    /// Evaluates every step's `when:` on every host.
    pub(super) fn decide_when(&mut self, playbook: &Playbook) -> Result<(), SourceError> {
        let captures: Vec<String> = self
            .steps
            .iter()
            .filter_map(|s| s.capture.clone())
            .collect();
        for (section, steps) in [("steps", &mut self.steps), ("rollback", &mut self.rollback)] {
            for (index, step) in steps.iter_mut().enumerate() {
                let conditions = &step.when.conditions;
                if conditions.is_empty() {
                    continue;
                }
                let index = index.to_string();
                let listed = playbook
                    .doc
                    .root
                    .find(&[section, &index, "when", "0"])
                    .is_some();
                let path = |i: usize| -> Vec<String> {
                    let mut path = vec![section.to_string(), index.clone(), "when".to_string()];
                    if listed {
                        path.push(i.to_string());
                    }
                    path
                };
                for (i, condition) in conditions.iter().enumerate() {
                    let read = self.renderer.condition_names(condition);
                    let captured = read.iter().find(|name| {
                        let first = name.split('.').next().unwrap_or(name);
                        captures.iter().any(|c| c == first)
                    });
                    if let Some(name) = captured {
                        let path = path(i);
                        let path: Vec<&str> = path.iter().map(String::as_str).collect();
                        return Err(playbook.error_in(
                            &path,
                            Some(name),
                            format!(
                                "`when:` of {section}[{index}] reads `{name}`, which a step captures as the run goes: \
                                 herd decides `when:` before the run, from the inventory and the playbook"
                            ),
                        ));
                    }
                }
                let mut skip = Vec::with_capacity(self.hosts.len());
                for host in &self.hosts {
                    let mut holds = true;
                    for (i, condition) in conditions.iter().enumerate() {
                        match self.renderer.condition(condition, &host.vars) {
                            Ok(true) => {}
                            Ok(false) => {
                                holds = false;
                                break;
                            }
                            Err(error) => {
                                let what =
                                    format!("when of {section}[{index}] on host {}", host.name);
                                let path = path(i);
                                let path: Vec<&str> = path.iter().map(String::as_str).collect();
                                // Its message has its secrets masked already
                                // (see `Renderer::condition`).
                                return Err(template_error(
                                    playbook, &path, condition, &error, &what,
                                ));
                            }
                        }
                    }
                    skip.push(!holds);
                }
                step.when.skip = skip;
            }
        }
        Ok(())
    }
}
