//! The end-of-run summary as Markdown, for a CI's job page (GitHub's
//! `$GITHUB_STEP_SUMMARY`): a headline with the outcome, the same table as
//! the plain summary, and the tail of each failed host's stderr. Every text
//! comes from the events, masked as herd masks everything it prints.

use std::fmt::Write;

use super::summary::{counts, failed_with_stderr, master_column, note, workers_column};
use crate::app::exit;
use crate::event::RunReport;

/// Lines of a failed step's stderr shown under the table.
const TAIL_LINES: usize = 5;

pub fn render(title: &str, report: &RunReport) -> String {
    let mut out = String::new();
    let code = report.exit_code();
    let outcome = match code {
        exit::OK => "every host done",
        exit::LOCKED => "the deploy lock is held on a host, nothing ran",
        exit::INTERRUPTED => "interrupted",
        _ => "the rollout failed",
    };
    // A blank line first: what the file held may end in a paragraph.
    let _ = writeln!(out, "\n### herd: {}\n", inline(title));
    let _ = writeln!(
        out,
        "**{outcome}** (exit code {code}): {} host(s) in {:.2}s: {}\n",
        report.hosts.len(),
        report.duration.as_secs_f64(),
        inline(&counts(report))
    );
    if let Some(reason) = &report.aborted {
        let _ = writeln!(out, "Rollout aborted: {}\n", inline(reason));
    }
    for conflict in &report.lock_held {
        let _ = writeln!(
            out,
            "The deploy lock on {} is held by {}\n",
            inline(&conflict.host),
            inline(&conflict.holder)
        );
    }
    if report.interrupted {
        let _ = writeln!(
            out,
            "Interrupted: no new step or batch was started after Ctrl-C\n"
        );
    }
    out.push_str("| Host | Result | Steps | Master | Workers | Duration | Note |\n");
    out.push_str("| --- | --- | ---: | ---: | ---: | ---: | --- |\n");
    for host in &report.hosts {
        let cells = [
            host.host.clone(),
            host.state.label().to_string(),
            format!("{}/{}", host.steps_ok, host.steps_total),
            master_column(host),
            workers_column(host),
            format!("{:.2}s", host.duration.as_secs_f64()),
            note(host),
        ];
        let row: Vec<String> = cells.iter().map(|cell| inline(cell)).collect();
        let _ = writeln!(out, "| {} |", row.join(" | "));
    }
    for (host, failure, code) in failed_with_stderr(report) {
        let _ = writeln!(
            out,
            "\n**{}**: step {} \"{}\" failed (exit code {code}), stderr ends with:\n",
            inline(&host.host),
            failure.step,
            inline(&failure.step_name)
        );
        out.push_str(&fenced(&crate::shell::text_tail(
            &failure.stderr_tail,
            TAIL_LINES,
        )));
    }
    out.push('\n');
    out
}

/// `text` as literal Markdown on one line (a table cell, a headline): every
/// character Markdown or HTML would act on is escaped, `|` included, and a
/// line break becomes `<br>`.
pub fn inline(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.trim_end().chars() {
        match c {
            '\\' | '`' | '*' | '_' | '[' | ']' | '<' | '>' | '|' | '~' | '&' | '#' | '!' => {
                out.push('\\');
                out.push(c);
            }
            '\n' => out.push_str("<br>"),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

/// `text` in a fenced code block whose fence no line of it can close.
fn fenced(text: &str) -> String {
    // The fence is measured on the text as written out: a control
    // character dropped between two runs of backticks joins them.
    let body: String = text
        .chars()
        .filter(|c| *c == '\n' || *c == '\t' || !c.is_control())
        .collect();
    let longest = body.split(|c| c != '`').map(str::len).max().unwrap_or(0);
    let fence = "`".repeat(longest.max(2) + 1);
    format!("{fence}text\n{body}\n{fence}\n")
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::event::{Failure, HostReport, HostState};

    fn host(name: &str, state: HostState) -> HostReport {
        crate::event::host_report(name, state)
    }

    #[test]
    fn a_cell_stays_one_cell_on_one_line() {
        assert_eq!(inline("a | b\nc"), r"a \| b<br>c");
        assert_eq!(inline("<b>*x*</b> & `y`"), r"\<b\>\*x\*\</b\> \& \`y\`");
        assert_eq!(inline("plain words, 2 -> 2."), r"plain words, 2 -\> 2.");
        assert_eq!(inline("bell\u{7}\r\n"), "bell");
    }

    #[test]
    fn a_fence_is_longer_than_any_backticks_inside() {
        assert_eq!(fenced("ok"), "```text\nok\n```\n");
        assert_eq!(fenced("a ```` b"), "`````text\na ```` b\n`````\n");
    }

    #[test]
    fn the_summary_has_a_headline_a_row_per_host_and_each_stderr_tail() {
        let stderr: Vec<String> = (1..=8).map(|n| format!("line {n}")).collect();
        let report = RunReport {
            hosts: vec![
                host("web1", HostState::Done),
                host(
                    "web2",
                    HostState::RolledBack {
                        failure: Failure {
                            step: 2,
                            step_name: "Migrate | db".into(),
                            exit_code: Some(3),
                            reason: "exited with code 3".into(),
                            stderr_tail: stderr.join("\n"),
                        },
                        rollback_ok: true,
                    },
                ),
            ],
            aborted: Some("1 host(s) failed".into()),
            interrupted: false,
            lock_held: Vec::new(),
            duration: Duration::from_secs(3),
        };
        let markdown = render("Deploy v2", &report);
        assert_eq!(
            markdown,
            "\n### herd: Deploy v2\n\n\
             **the rollout failed** (exit code 1): 2 host(s) in 3.00s: 1 done, 1 rolled back\n\n\
             Rollout aborted: 1 host(s) failed\n\n\
             | Host | Result | Steps | Master | Workers | Duration | Note |\n\
             | --- | --- | ---: | ---: | ---: | ---: | --- |\n\
             | web1 | done | 1/2 | - | - | 1.50s |  |\n\
             | web2 | rolled back | 1/2 | - | - | 1.50s | step 2 \"Migrate \\| db\": exited with code 3; rollback ok |\n\
             \n**web2**: step 2 \"Migrate \\| db\" failed (exit code 3), stderr ends with:\n\n\
             ```text\nline 4\nline 5\nline 6\nline 7\nline 8\n```\n\n"
        );
    }

    #[test]
    fn a_control_character_between_backticks_cannot_close_the_fence() {
        let fenced = fenced("``\u{1}``\n# HEADING INJECTED");
        assert_eq!(fenced, "`````text\n````\n# HEADING INJECTED\n`````\n");
    }
}
