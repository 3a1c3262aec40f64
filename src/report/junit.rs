//! `--report FILE`: the run as JUnit XML, one test case per host, so CI test
//! views show which host failed at which step and why.

use std::fmt::Write as _;
use std::path::PathBuf;

use super::Reporter;
use crate::event::{Event, HostState, RunReport};

pub struct JunitReporter {
    pub path: PathBuf,
    pub title: String,
    /// Set when the file could not be written; the run's outcome stands.
    pub error: std::sync::Arc<std::sync::Mutex<Option<String>>>,
}

impl Reporter for JunitReporter {
    fn handle(&mut self, event: &Event) {
        match event {
            Event::RunStarted { title, .. } => self.title = title.clone(),
            Event::RunFinished { report } => {
                if let Err(error) = std::fs::write(&self.path, render(&self.title, report)) {
                    if let Ok(mut slot) = self.error.lock() {
                        *slot = Some(format!(
                            "cannot write the report {}: {error}",
                            self.path.display()
                        ));
                    }
                }
            }
            _ => {}
        }
    }
}

pub fn render(title: &str, report: &RunReport) -> String {
    let count = |f: fn(&HostState) -> bool| report.hosts.iter().filter(|h| f(&h.state)).count();
    let failures = count(|s| matches!(s, HostState::Failed { .. } | HostState::RolledBack { .. }));
    let errors = count(|s| {
        matches!(
            s,
            HostState::Unreachable { .. }
                | HostState::Interrupted { .. }
                | HostState::ContactLost { .. }
        )
    });
    let skipped = count(|s| matches!(s, HostState::Untouched { .. }));
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        out,
        "<testsuites name=\"herd\" tests=\"{}\" failures=\"{failures}\" errors=\"{errors}\" skipped=\"{skipped}\" time=\"{:.3}\">",
        report.hosts.len(),
        report.duration.as_secs_f64()
    );
    let _ = writeln!(
        out,
        "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{failures}\" errors=\"{errors}\" skipped=\"{skipped}\" time=\"{:.3}\">",
        escape(title),
        report.hosts.len(),
        report.duration.as_secs_f64()
    );
    for host in &report.hosts {
        let _ = write!(
            out,
            "    <testcase classname=\"herd.{}\" name=\"{}\" time=\"{:.3}\"",
            escape(&title.replace(' ', "_")),
            escape(&host.host),
            host.duration.as_secs_f64()
        );
        match &host.state {
            HostState::Done => out.push_str("/>\n"),
            HostState::Failed { failure } | HostState::RolledBack { failure, .. } => {
                let rolled = match &host.state {
                    HostState::RolledBack {
                        rollback_ok: true, ..
                    } => "; rolled back",
                    HostState::RolledBack {
                        rollback_ok: false, ..
                    } => "; ROLLBACK FAILED",
                    _ => "",
                };
                let message = format!(
                    "step {} \"{}\": {}{rolled}",
                    failure.step, failure.step_name, failure.reason
                );
                let _ = writeln!(
                    out,
                    ">\n      <failure message=\"{}\" type=\"step\">{}</failure>\n    </testcase>",
                    escape(&message),
                    escape(&failure.stderr_tail)
                );
            }
            HostState::ContactLost { failure } => {
                let message = format!(
                    "{}; contact lost, the host's state is unknown",
                    failure.reason
                );
                let _ = writeln!(
                    out,
                    ">\n      <error message=\"{}\" type=\"contact_lost\"/>\n    </testcase>",
                    escape(&message)
                );
            }
            HostState::Unreachable { reason } => {
                let _ = writeln!(
                    out,
                    ">\n      <error message=\"{}\" type=\"unreachable\"/>\n    </testcase>",
                    escape(reason)
                );
            }
            HostState::Interrupted {
                next_step,
                next_step_name,
                rollback_ok,
            } => {
                let rolled = match rollback_ok {
                    None => "",
                    Some(true) => "; rolled back",
                    Some(false) => "; ROLLBACK FAILED",
                };
                let message =
                    format!("interrupted before step {next_step} \"{next_step_name}\"{rolled}");
                let _ = writeln!(
                    out,
                    ">\n      <error message=\"{}\" type=\"interrupted\"/>\n    </testcase>",
                    escape(&message)
                );
            }
            HostState::Untouched { reason } => {
                let _ = writeln!(
                    out,
                    ">\n      <skipped message=\"{}\"/>\n    </testcase>",
                    escape(reason)
                );
            }
        }
    }
    out.push_str("  </testsuite>\n</testsuites>\n");
    out
}

/// Escapes text for XML attributes and content; drops characters XML 1.0 forbids.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\n' | '\t' | '\r' => out.push(c),
            c if (c as u32) < 0x20 => {}
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::event::{Failure, HostReport};

    fn host(name: &str, state: HostState) -> HostReport {
        crate::event::host_report(name, state)
    }

    #[test]
    fn one_case_per_host_and_failures_name_the_step() {
        let report = RunReport {
            hosts: vec![
                host("web1", HostState::Done),
                host(
                    "web2",
                    HostState::Failed {
                        failure: Failure {
                            step: 2,
                            step_name: "Migrate <db>".into(),
                            exit_code: Some(1),
                            reason: "exited with code 1".into(),
                            stderr_tail: "error: \u{1b}[31m& no table".into(),
                        },
                    },
                ),
                host(
                    "web3",
                    HostState::Untouched {
                        reason: "stopped".into(),
                    },
                ),
            ],
            aborted: Some("batch 1 failed".into()),
            interrupted: false,
            lock_held: Vec::new(),
            duration: Duration::from_secs(3),
        };
        let xml = render("Release \"web\"", &report);
        assert!(xml.contains("<testsuite name=\"Release &quot;web&quot;\" tests=\"3\" failures=\"1\" errors=\"0\" skipped=\"1\""), "{xml}");
        assert!(xml.contains("<testcase classname=\"herd.Release_&quot;web&quot;\" name=\"web1\" time=\"1.500\"/>"), "{xml}");
        assert!(xml.contains("<failure message=\"step 2 &quot;Migrate &lt;db&gt;&quot;: exited with code 1\" type=\"step\">error: [31m&amp; no table</failure>"), "{xml}");
        assert!(xml.contains("<skipped message=\"stopped\"/>"));
    }
}
