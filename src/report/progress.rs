//! Progress on a terminal: one overall bar (hosts done of total, batch i of
//! n, elapsed) and one line per active host showing its current step.
//! Failures and other notable events print above the bars as plain lines;
//! the summary table prints when the run ends. indicatif limits redraws, and
//! at most [`HOST_LINES`] host lines are shown, so 200 hosts do not flicker.

use std::collections::HashMap;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::{paint, plain, write_out, Reporter};
use crate::event::Event;

/// Host lines shown at once; the rest are counted on the overall bar.
const HOST_LINES: usize = 12;

pub struct ProgressReporter {
    exec: bool,
    multi: MultiProgress,
    overall: ProgressBar,
    hosts: HashMap<String, ProgressBar>,
    batch: String,
    /// Hosts between their first step and their end, shown or not.
    working: std::collections::HashSet<String>,
    /// Each host's current step as its line shows it, for upload progress.
    steps: HashMap<String, String>,
    colour: bool,
}

impl ProgressReporter {
    pub fn new(exec: bool, colour: bool) -> Self {
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr_with_hz(10));
        let overall = multi.add(ProgressBar::new(0));
        overall.set_style(
            ProgressStyle::with_template(
                "{prefix:.bold} [{bar:30.cyan/blue}] {pos}/{len} hosts  {elapsed}  {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        overall.enable_steady_tick(Duration::from_millis(200));
        ProgressReporter {
            exec,
            multi,
            overall,
            hosts: HashMap::new(),
            batch: String::new(),
            working: std::collections::HashSet::new(),
            steps: HashMap::new(),
            colour,
        }
    }

    /// `batch 2/4, 50 hosts at work`: the overall bar's message.
    fn refresh_message(&self) {
        let message = match self.working.len() {
            0 => self.batch.clone(),
            n => format!("{}, {n} host(s) at work", self.batch),
        };
        self.overall.set_message(message);
    }

    fn host_line(&mut self, host: &str) -> Option<&ProgressBar> {
        if self.working.insert(host.to_string()) {
            self.refresh_message();
        }
        if !self.hosts.contains_key(host) {
            if self.hosts.len() >= HOST_LINES {
                return None;
            }
            let bar = self.multi.add(ProgressBar::new_spinner());
            bar.set_style(
                ProgressStyle::with_template("  {spinner} {prefix:12} {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            bar.set_prefix(host.to_string());
            bar.enable_steady_tick(Duration::from_millis(120));
            self.hosts.insert(host.to_string(), bar);
        }
        self.hosts.get(host)
    }

    fn finish_host(&mut self, host: &str) {
        self.working.remove(host);
        self.steps.remove(host);
        self.refresh_message();
        if let Some(bar) = self.hosts.remove(host) {
            bar.finish_and_clear();
            self.multi.remove(&bar);
        }
        self.overall.inc(1);
    }

    /// Prints above the bars.
    fn say(&self, text: &str) {
        for line in text.lines() {
            let _ = self.multi.println(paint(line, self.colour));
        }
    }
}

impl Reporter for ProgressReporter {
    fn handle(&mut self, event: &Event) {
        if self.exec {
            let out = plain::exec_output(event);
            if !out.is_empty() {
                self.multi
                    .suspend(|| write_out(&mut std::io::stdout().lock(), &out));
            }
        }
        match event {
            Event::RunStarted {
                title,
                hosts,
                batches,
                ..
            } => {
                self.overall.set_length(hosts.len() as u64);
                self.overall
                    .set_prefix(title.chars().take(40).collect::<String>());
                self.batch = format!("batch 1/{}", batches.len().max(1));
                self.refresh_message();
                self.say(&plain::describe(event, self.exec));
            }
            Event::BatchStarted { batch, of, .. } => {
                self.batch = format!("batch {batch}/{of}");
                self.refresh_message();
            }
            // Host lines are for hosts at work; a connected host waits its batch.
            Event::HostConnected { .. } => {}
            Event::StepStarted {
                host,
                step,
                of,
                name,
                rollback,
            } => {
                let phase = if *rollback { "rollback " } else { "" };
                let line = format!("{phase}[{step}/{of}] {name}");
                if let Some(bar) = self.host_line(host) {
                    bar.set_message(line.clone());
                }
                self.steps.insert(host.clone(), line);
            }
            Event::UploadProgress {
                host,
                bytes,
                total,
                elapsed,
                ..
            } => {
                let line = self.steps.get(host).cloned().unwrap_or_default();
                let rate = crate::event::rate(*bytes, *elapsed);
                let of = total.map_or(String::new(), |t| format!(" of {}", crate::event::size(t)));
                let said = format!(
                    "{line}: {}{of} sent, {}/s",
                    crate::event::size(*bytes),
                    crate::event::size(rate)
                );
                if let Some(bar) = self.host_line(host) {
                    bar.set_message(said);
                }
            }
            Event::StepFinished { result, .. } if result.ok && result.transfer.is_some() => {
                self.say(&plain::describe(event, self.exec));
            }
            Event::ReloadStarted { host, rollback } => {
                let what = if *rollback {
                    "restoring the server"
                } else {
                    "reloading and validating"
                };
                if let Some(bar) = self.host_line(host) {
                    bar.set_message(what);
                }
            }
            Event::HookStarted { hook, .. } => {
                self.overall
                    .set_message(format!("{}, hook {hook} running", self.batch));
            }
            Event::HookFinished { .. } => {
                self.refresh_message();
                self.say(&plain::describe(event, self.exec));
            }
            Event::StepFinished { result, .. } if result.ok => {}
            Event::HostFinished { report } => {
                let text = plain::describe(event, self.exec);
                self.say(&text);
                self.finish_host(&report.host);
            }
            Event::RunFinished { .. } => {
                for (_, bar) in self.hosts.drain() {
                    bar.finish_and_clear();
                }
                self.overall.finish_and_clear();
                let _ = self.multi.clear();
                let text = plain::describe(event, self.exec);
                let painted: String = text.lines().map(|l| paint(l, self.colour) + "\n").collect();
                write_out(&mut std::io::stderr().lock(), &painted);
            }
            // Connection and steps: the bars show progress; failures print.
            _ => self.say(&plain::describe(event, self.exec)),
        }
    }
}
