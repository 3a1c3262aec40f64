//! `once: true` steps: run on one host per rollout, the first reachable host
//! of the first batch. Other hosts wait at that step until it has run there,
//! then skip it (or fail, if it did not succeed), so no host gets past a
//! migration before the migration is done.

use tokio::sync::watch;

/// Where a once step stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnceState {
    Pending,
    Succeeded,
    /// Its `when:` is false on the runner: no host runs it.
    Skipped,
    /// It failed, or its host stopped before running it.
    NotDone,
}

/// One gate per step of the plan (unused for steps without `once`).
pub struct OnceGates {
    /// The plan index of the host that runs once steps.
    pub runner: Option<usize>,
    gates: Vec<watch::Sender<OnceState>>,
}

impl OnceGates {
    pub fn new(steps: usize, runner: Option<usize>) -> Self {
        OnceGates {
            runner,
            gates: (0..steps)
                .map(|_| watch::channel(OnceState::Pending).0)
                .collect(),
        }
    }

    /// Records how the step went on the runner.
    pub fn settle(&self, step: usize, state: OnceState) {
        if let Some(gate) = self.gates.get(step) {
            gate.send_if_modified(|current| {
                let changed = *current == OnceState::Pending;
                if changed {
                    *current = state;
                }
                changed
            });
        }
    }

    /// The runner stopped: every once step it did not reach will not run.
    pub fn abandon_from(&self, step: usize) {
        for index in step..self.gates.len() {
            self.settle(index, OnceState::NotDone);
        }
    }

    /// Waits until the step has run on the runner (or will not).
    pub async fn wait(&self, step: usize) -> OnceState {
        let Some(gate) = self.gates.get(step) else {
            return OnceState::NotDone;
        };
        let mut receiver = gate.subscribe();
        let state = match receiver.wait_for(|s| *s != OnceState::Pending).await {
            Ok(state) => *state,
            Err(_) => OnceState::NotDone,
        };
        state
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn waiting_hosts_learn_the_outcome() {
        let gates = std::sync::Arc::new(OnceGates::new(3, Some(0)));
        let waiter = {
            let gates = gates.clone();
            tokio::spawn(async move { gates.wait(1).await })
        };
        gates.settle(1, OnceState::Succeeded);
        gates.settle(1, OnceState::NotDone);
        assert_eq!(waiter.await.unwrap(), OnceState::Succeeded);
        gates.abandon_from(1);
        assert_eq!(gates.wait(2).await, OnceState::NotDone);
        assert_eq!(gates.wait(1).await, OnceState::Succeeded);
    }
}
