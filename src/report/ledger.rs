//! Where each host stands, kept for the one moment no other reporter gets to
//! speak: a second Ctrl-C ends herd at once, and its last words name every
//! host and what it was doing, so no host is left half-done without a word.

use std::sync::{Arc, Mutex};

use indexmap::IndexMap;

use super::Reporter;
use crate::event::Event;

/// What was last seen of one host.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Stage {
    /// Nothing has run there yet.
    Untouched,
    /// A step of the playbook (or of its rollback) was started.
    Step {
        step: usize,
        of: usize,
        name: String,
        rollback: bool,
    },
    /// Its reload (or the restore after a rollback) was under way.
    Reload { rollback: bool },
    /// The engine finished with it: the result's label.
    Finished(&'static str),
}

/// Every host's stage, shared between the reporter that keeps it and the
/// signal handler that prints it.
#[derive(Debug, Default, Clone)]
pub struct Ledger {
    hosts: Arc<Mutex<IndexMap<String, Stage>>>,
}

impl Ledger {
    /// The reporter that keeps this ledger up to date.
    pub fn keeper(&self) -> Box<dyn Reporter> {
        Box::new(Keeper {
            ledger: self.clone(),
        })
    }

    fn set(&self, host: &str, stage: Stage) {
        if let Ok(mut hosts) = self.hosts.lock() {
            hosts.insert(host.to_string(), stage);
        }
    }

    /// One line per host: what it was doing when herd stopped.
    pub fn last_words(&self) -> String {
        let Ok(hosts) = self.hosts.lock() else {
            return String::new();
        };
        let mut out = String::new();
        for (host, stage) in hosts.iter() {
            let line = match stage {
                Stage::Untouched => "untouched".to_string(),
                Stage::Finished(label) => label.to_string(),
                Stage::Step {
                    step,
                    of,
                    name,
                    rollback: false,
                } => format!(
                    "HALF-DONE: stopped during step {step}/{of} \"{name}\", no rollback ran: check this host by hand"
                ),
                Stage::Step {
                    step,
                    of,
                    name,
                    rollback: true,
                } => format!(
                    "HALF-DONE: stopped during rollback step {step}/{of} \"{name}\": check this host by hand"
                ),
                Stage::Reload { rollback: false } => {
                    "HALF-DONE: stopped during its reload: check this host by hand".to_string()
                }
                Stage::Reload { rollback: true } => {
                    "HALF-DONE: stopped while restoring its server after a rollback: check this host by hand"
                        .to_string()
                }
            };
            out.push_str(&format!("herd: {host}: {line}\n"));
        }
        out
    }
}

struct Keeper {
    ledger: Ledger,
}

impl Reporter for Keeper {
    fn handle(&mut self, event: &Event) {
        match event {
            Event::RunStarted { hosts, .. } => {
                for host in hosts {
                    self.ledger.set(host, Stage::Untouched);
                }
            }
            Event::StepStarted {
                host,
                step,
                of,
                name,
                rollback,
            } => self.ledger.set(
                host,
                Stage::Step {
                    step: *step,
                    of: *of,
                    name: name.clone(),
                    rollback: *rollback,
                },
            ),
            Event::ReloadStarted { host, rollback } => self.ledger.set(
                host,
                Stage::Reload {
                    rollback: *rollback,
                },
            ),
            Event::HostUnreachable { host, .. } => {
                self.ledger.set(host, Stage::Finished("unreachable"));
            }
            Event::HostFinished { report } => {
                self.ledger
                    .set(&report.host, Stage::Finished(report.state.label()));
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_host_is_named_with_what_it_was_doing() {
        let ledger = Ledger::default();
        let mut keeper = ledger.keeper();
        keeper.handle(&Event::RunStarted {
            title: "t".into(),
            hosts: vec!["a".into(), "b".into(), "c".into(), "d".into()],
            batches: vec![],
        });
        keeper.handle(&Event::StepStarted {
            host: "a".into(),
            step: 2,
            of: 4,
            name: "Switch".into(),
            rollback: false,
        });
        keeper.handle(&Event::ReloadStarted {
            host: "b".into(),
            rollback: true,
        });
        keeper.handle(&Event::HostUnreachable {
            host: "d".into(),
            reason: "refused".into(),
        });
        assert_eq!(
            ledger.last_words(),
            "herd: a: HALF-DONE: stopped during step 2/4 \"Switch\", no rollback ran: check this host by hand\n\
             herd: b: HALF-DONE: stopped while restoring its server after a rollback: check this host by hand\n\
             herd: c: untouched\n\
             herd: d: unreachable\n"
        );
    }
}
