//! Reporters: the only code that writes what happens to the terminal.
//!
//! Each reporter consumes the engine's [`Event`]s. `plain` writes one line per
//! event to stderr (and, for `herd exec`, each host's output to stdout);
//! `json` writes one JSON object per event to stdout; `summary` renders the
//! final table both share; `github` and `gitlab` add a CI's own markers
//! (annotations, groups, sections, the job summary in `markdown`) to stderr.

pub mod ci;
pub mod github;
pub mod gitlab;
pub mod json;
pub mod junit;
pub mod ledger;
pub mod markdown;
pub mod plain;
pub mod progress;
pub mod summary;

use std::io::Write;

use tokio::sync::mpsc;

use crate::event::Event;

pub trait Reporter: Send {
    fn handle(&mut self, event: &Event);
}

/// Feeds every event to `reporter` until the engine is done.
pub async fn drain(
    mut events: mpsc::UnboundedReceiver<Event>,
    mut reporters: Vec<Box<dyn Reporter>>,
) {
    while let Some(event) = events.recv().await {
        for reporter in &mut reporters {
            reporter.handle(&event);
        }
    }
}

/// Red for failures, green for successes, when colour is on.
pub(crate) fn paint(line: &str, colour: bool) -> String {
    if !colour {
        return line.to_string();
    }
    let alarming = [
        "FAILED",
        "UNREACHABLE",
        "ABORTED",
        "HELD",
        "failed",
        "unreachable",
        "interrupted",
    ];
    let style = if alarming.iter().any(|word| line.contains(word)) {
        console::Style::new().red()
    } else if line.contains(": ok") || line.contains("  done  ") {
        console::Style::new().green()
    } else {
        return line.to_string();
    };
    style.force_styling(true).apply_to(line).to_string()
}

/// Writes, ignoring a closed pipe (`herd ... | head` must not fail the rollout).
pub(crate) fn write_out(stream: &mut dyn Write, text: &str) {
    let _ = stream.write_all(text.as_bytes());
    let _ = stream.flush();
}
