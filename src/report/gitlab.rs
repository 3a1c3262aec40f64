//! `--ci-format gitlab`: each batch's log lines in a collapsible section of
//! the GitLab CI job log, collapsed by default. The failures stay readable
//! in the summary below the sections, and JUnit (`--report`) feeds
//! `artifacts:reports:junit`.

use std::time::{SystemTime, UNIX_EPOCH};

use super::ci::{batch_header, ends_batch};
use super::{write_out, Reporter};
use crate::event::Event;

#[derive(Default)]
pub struct GitlabReporter {
    /// The number of the batch whose section is open.
    open: Option<usize>,
}

impl Reporter for GitlabReporter {
    fn handle(&mut self, event: &Event) {
        let mut out = String::new();
        if ends_batch(event) {
            if let Some(batch) = self.open.take() {
                out.push_str(&section_end(batch, unix_time()));
            }
        }
        if let Event::BatchStarted { batch, of, hosts } = event {
            out.push_str(&section_start(
                *batch,
                unix_time(),
                &batch_header(*batch, *of, hosts),
            ));
            self.open = Some(*batch);
        }
        if !out.is_empty() {
            write_out(&mut std::io::stderr().lock(), &out);
        }
    }
}

/// The line that opens batch `batch`'s section, headed `header`.
pub fn section_start(batch: usize, time: u64, header: &str) -> String {
    format!("\x1b[0Ksection_start:{time}:herd_batch_{batch}[collapsed=true]\r\x1b[0K{header}\n")
}

/// The line that closes batch `batch`'s section.
pub fn section_end(batch: usize, time: u64) -> String {
    format!("\x1b[0Ksection_end:{time}:herd_batch_{batch}\r\x1b[0K\n")
}

/// Seconds since the epoch, as GitLab times a section.
fn unix_time() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sections_are_marked_as_gitlab_documents() {
        assert_eq!(
            section_start(2, 1_700_000_000, "batch 2/4: web3 web4"),
            "\u{1b}[0Ksection_start:1700000000:herd_batch_2[collapsed=true]\r\u{1b}[0Kbatch 2/4: web3 web4\n"
        );
        assert_eq!(
            section_end(2, 1_700_000_009),
            "\u{1b}[0Ksection_end:1700000009:herd_batch_2\r\u{1b}[0K\n"
        );
    }
}
