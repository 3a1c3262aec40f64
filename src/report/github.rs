//! `--ci-format github`: GitHub Actions' workflow commands beside the log
//! lines. Each host that did not end done becomes an `::error` annotation
//! (host, step, the tail of its stderr), each batch's lines a
//! `::group::`, and the summary table is appended as Markdown to the job
//! summary file (`$GITHUB_STEP_SUMMARY`). Every text comes from the
//! events, already masked as herd masks everything it prints.

use std::io::Write as _;
use std::path::PathBuf;
use std::sync::Mutex;

use super::ci::{batch_header, ends_batch};
use super::{markdown, write_out, Reporter};
use crate::event::{Event, Failure, HostReport, HostState};

/// Lines of a failed step's stderr an annotation quotes.
const TAIL_LINES: usize = 5;

pub struct GithubReporter {
    /// The job summary file (`$GITHUB_STEP_SUMMARY`), `None` when unset.
    step_summary: Option<PathBuf>,
    /// Between herd's own commands, the runner processes none
    /// (`::stop-commands::TOKEN` ... `::TOKEN::`): whatever a host prints,
    /// at the start of a line, after a CR or as `##[...]` anywhere, is text.
    /// The token is random, so no host output can resume them.
    token: String,
    /// Commands are stopped.
    stopped: bool,
    title: String,
    /// A `::group::` is open.
    grouped: bool,
}

impl GithubReporter {
    pub fn new(step_summary: Option<PathBuf>) -> Self {
        GithubReporter {
            step_summary,
            token: random_token(),
            stopped: false,
            title: String::new(),
            grouped: false,
        }
    }

    /// Appends the Markdown summary to the job summary file, creating it if
    /// need be; what went wrong, as a warning, when it cannot.
    fn append_summary(&self, markdown: &str) -> Result<(), String> {
        let Some(path) = &self.step_summary else {
            return Err("GITHUB_STEP_SUMMARY is not set: no job summary written".to_string());
        };
        std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(path)
            .and_then(|mut file| file.write_all(markdown.as_bytes()))
            .map_err(|e| {
                format!(
                    "cannot append the job summary to {} (GITHUB_STEP_SUMMARY): {e}",
                    path.display()
                )
            })
    }
}

impl Reporter for GithubReporter {
    fn handle(&mut self, event: &Event) {
        let mut out = String::new();
        if self.grouped && ends_batch(event) {
            out.push_str("::endgroup::\n");
            self.grouped = false;
        }
        match event {
            Event::RunStarted { title, .. } => self.title = title.clone(),
            Event::BatchStarted { batch, of, hosts } => {
                out.push_str(&format!(
                    "::group::{}\n",
                    escape_data(&batch_header(*batch, *of, hosts))
                ));
                self.grouped = true;
            }
            Event::HostFinished { report } => {
                if let Some(annotation) = annotation(report) {
                    out.push_str(&annotation);
                }
            }
            Event::LockHeld {
                host,
                holder,
                waiting: false,
            } => out.push_str(&command(
                "error",
                &format!("herd: {host}"),
                &format!("the deploy lock is held by {holder}: nothing ran"),
            )),
            Event::RolloutAborted { reason } => out.push_str(&command(
                "error",
                "herd",
                &format!("rollout aborted: {reason}"),
            )),
            Event::RunFinished { report } => {
                if let Err(warning) = self.append_summary(&markdown::render(&self.title, report)) {
                    out.push_str(&format!("herd: warning: {warning}\n"));
                }
            }
            _ => {}
        }
        let token = &self.token;
        let mut text = String::new();
        if !out.is_empty() {
            if self.stopped {
                text.push_str(&format!("::{token}::\n"));
            }
            text.push_str(&out);
            self.stopped = false;
        }
        // Stopped again before any line a host wrote is printed.
        if !self.stopped {
            text.push_str(&format!("::stop-commands::{token}\n"));
            self.stopped = true;
        }
        set_stopped(Some(token));
        write_out(&mut std::io::stderr().lock(), &text);
    }
}

/// The token that stops workflow commands now, for a herd that ends without
/// dropping its reporter (a second Ctrl-C): see [`resume_line`].
static STOPPED: Mutex<Option<String>> = Mutex::new(None);

fn set_stopped(token: Option<&str>) {
    if let Ok(mut stopped) = STOPPED.lock() {
        *stopped = token.map(str::to_string);
    }
}

/// The line that gives the job's later steps their workflow commands back,
/// when herd stopped them; empty otherwise. Said once: the commands stay
/// on after it.
pub fn resume_line() -> String {
    match STOPPED.lock().ok().and_then(|mut stopped| stopped.take()) {
        Some(token) => format!("::{token}::\n"),
        None => String::new(),
    }
}

/// Once the run's lines are all out, later steps of the job get their
/// workflow commands back.
impl Drop for GithubReporter {
    fn drop(&mut self) {
        if self.stopped {
            set_stopped(None);
            write_out(
                &mut std::io::stderr().lock(),
                &format!("::{}::\n", self.token),
            );
        }
    }
}

/// 32 hex digits from the kernel's random source (the time and pid where
/// it cannot be read).
fn random_token() -> String {
    let mut bytes = [0u8; 16];
    let read = std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut bytes));
    if read.is_err() {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
            ^ u128::from(std::process::id()) << 64;
        bytes = seed.to_le_bytes();
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The annotation of a host that did not end done (nothing for a host the
/// run never got to): an error, or a warning for a host stopped by Ctrl-C
/// and rolled back cleanly.
pub fn annotation(report: &HostReport) -> Option<String> {
    let step = |failure: &Failure| {
        if failure.step <= report.steps_total {
            format!(
                "step {}/{} \"{}\"",
                failure.step, report.steps_total, failure.step_name
            )
        } else {
            // The reload stage comes after the last step.
            "the reload".to_string()
        }
    };
    let with_tail = |text: String, failure: &Failure| {
        let tail = crate::shell::text_tail(&failure.stderr_tail, TAIL_LINES);
        if tail.is_empty() {
            text
        } else {
            format!("{text}\nstderr ends with:\n{tail}")
        }
    };
    let (kind, message) = match &report.state {
        HostState::Done | HostState::Untouched { .. } => return None,
        HostState::Failed { failure } => (
            "error",
            with_tail(format!("{}: {}", step(failure), failure.reason), failure),
        ),
        HostState::RolledBack {
            failure,
            rollback_ok,
        } => {
            let rolled = if *rollback_ok {
                "rolled back"
            } else {
                "ROLLBACK FAILED: check this host by hand"
            };
            (
                "error",
                with_tail(
                    format!("{}: {}; {rolled}", step(failure), failure.reason),
                    failure,
                ),
            )
        }
        HostState::ContactLost { failure } => (
            "error",
            with_tail(
                format!(
                    "{}: {}; contact lost after the reload signal: what it serves is unknown, no rollback ran, check this host by hand",
                    step(failure),
                    failure.reason
                ),
                failure,
            ),
        ),
        HostState::Unreachable { reason } => ("error", format!("unreachable: {reason}")),
        HostState::Interrupted {
            next_step,
            next_step_name,
            rollback_ok,
        } => {
            let (kind, rolled) = match rollback_ok {
                None => ("warning", ""),
                Some(true) => ("warning", "; rolled back"),
                Some(false) => ("error", "; ROLLBACK FAILED: check this host by hand"),
            };
            (
                kind,
                format!("interrupted before step {next_step} \"{next_step_name}\"{rolled}"),
            )
        }
    };
    Some(command(kind, &format!("herd: {}", report.host), &message))
}

/// One workflow command line: `::error title=herd%3A web1::message`.
fn command(kind: &str, title: &str, message: &str) -> String {
    format!(
        "::{kind} title={}::{}\n",
        escape_property(title),
        escape_data(message)
    )
}

/// A workflow command's message: `%`, CR and LF encoded, so a line break
/// in it cannot end the command (GitHub decodes them back).
pub fn escape_data(text: &str) -> String {
    text.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

/// A workflow command's property value: as a message, and also `:` and
/// `,`, which would end the value.
pub fn escape_property(text: &str) -> String {
    escape_data(text).replace(':', "%3A").replace(',', "%2C")
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn host(state: HostState) -> HostReport {
        HostReport {
            host: "web2".into(),
            state,
            steps_ok: 1,
            steps_skipped: 0,
            steps_total: 3,
            duration: Duration::from_millis(1500),
            reload: None,
        }
    }

    fn failure(step: usize, stderr_tail: &str) -> Failure {
        Failure {
            step,
            step_name: "Migrate".into(),
            exit_code: Some(3),
            reason: "exited with code 3".into(),
            stderr_tail: stderr_tail.into(),
        }
    }

    #[test]
    fn messages_and_properties_are_escaped_as_github_decodes_them() {
        assert_eq!(
            escape_data("100% done\r\nnext: a,b"),
            "100%25 done%0D%0Anext: a,b"
        );
        assert_eq!(
            escape_property("herd: web1, 100%\n"),
            "herd%3A web1%2C 100%25%0A"
        );
        assert_eq!(escape_data("%0A"), "%250A");
        assert_eq!(escape_property("plain"), "plain");
    }

    #[test]
    fn a_failed_host_is_an_error_naming_the_step_and_the_last_lines_of_stderr() {
        let tail: Vec<String> = (1..=10).map(|n| format!("line {n}")).collect();
        let failed = host(HostState::RolledBack {
            failure: failure(2, &tail.join("\n")),
            rollback_ok: true,
        });
        assert_eq!(
            annotation(&failed).as_deref(),
            Some(
                "::error title=herd%3A web2::step 2/3 \"Migrate\": exited with code 3; rolled back\
                 %0Astderr ends with:%0Aline 6%0Aline 7%0Aline 8%0Aline 9%0Aline 10\n"
            )
        );
    }

    #[test]
    fn every_way_of_not_ending_done_has_its_annotation() {
        let reload = host(HostState::Failed {
            failure: failure(4, ""),
        });
        assert_eq!(
            annotation(&reload).as_deref(),
            Some("::error title=herd%3A web2::the reload: exited with code 3\n")
        );
        let unreachable = host(HostState::Unreachable {
            reason: "connection refused".into(),
        });
        assert_eq!(
            annotation(&unreachable).as_deref(),
            Some("::error title=herd%3A web2::unreachable: connection refused\n")
        );
        let lost = annotation(&host(HostState::ContactLost {
            failure: failure(4, ""),
        }))
        .unwrap_or_default();
        assert!(
            lost.starts_with(
                "::error title=herd%3A web2::the reload: exited with code 3; contact lost"
            ),
            "{lost}"
        );
        let interrupted = host(HostState::Interrupted {
            next_step: 2,
            next_step_name: "Migrate".into(),
            rollback_ok: Some(true),
        });
        assert_eq!(
            annotation(&interrupted).as_deref(),
            Some("::warning title=herd%3A web2::interrupted before step 2 \"Migrate\"; rolled back\n")
        );
        assert_eq!(annotation(&host(HostState::Done)), None);
        let untouched = host(HostState::Untouched {
            reason: "the rollout stopped".into(),
        });
        assert_eq!(annotation(&untouched), None);
    }
}
