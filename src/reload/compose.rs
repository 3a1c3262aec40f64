//! A Compose service's containers, reloaded one after the other on a host:
//! found by the labels Compose gives them, each a `container` of its own,
//! each proven before the next is touched. When one fails, the later ones
//! are left as they are.

use super::container::{self, Members};
use super::place::Place;
use super::{fail, Proof, ReloadFailure, ReloadReport, ReloadSpec};
use crate::transport::Connection;

/// For a Compose service, each container with the spec that reloads it
/// alone; `None` for any other place.
pub(super) async fn each<T: Connection>(
    connection: &T,
    spec: &ReloadSpec,
) -> Result<Option<Vec<(String, ReloadSpec)>>, ReloadFailure> {
    let Place::Compose {
        engine,
        project,
        service,
    } = &spec.place
    else {
        return Ok(None);
    };
    let none = ReloadReport::default();
    let refused = |message: String| fail(Proof::Master, message, &none);
    let sudo = container::sudo(spec.become_, spec.become_user.as_deref());
    let script = container::members_query(*engine, project, service, &sudo);
    let output = connection
        .exec(&script, spec.command_timeout)
        .await
        .map_err(|e| refused(format!("listing the containers of {service}: {e}")))?;
    let said = String::from_utf8_lossy(&output.stdout);
    let (engine, names) = match container::parse_members(&said) {
        Members::Found { engine, names } => (engine, names),
        Members::NoEngine => {
            return Err(refused(
                "neither docker nor podman is installed on this host".to_string(),
            ))
        }
        Members::BothEngines => {
            return Err(refused(
                "both docker and podman are installed on this host: choose one with `engine`"
                    .to_string(),
            ))
        }
        Members::Failed {
            engine,
            exit_code,
            said,
        } => {
            return Err(refused(format!(
                "`{} ps` failed (exit code {}): {}",
                engine.name(),
                exit_code.map_or("none".to_string(), |c| c.to_string()),
                crate::shell::text_tail(&spec.mask.output(&said), 3)
            )))
        }
    };
    if names.is_empty() {
        return Err(refused(format!(
            "no {} container of the Compose service {service} in project {project} on this host (none has the labels {}={project} and {}={service})",
            engine.name(),
            container::PROJECT_LABEL,
            container::SERVICE_LABEL
        )));
    }
    Ok(Some(
        names
            .into_iter()
            .map(|name| {
                let one = ReloadSpec {
                    place: Place::Container {
                        engine: Some(engine),
                        name: name.clone(),
                    },
                    ..spec.clone()
                };
                (name, one)
            })
            .collect(),
    ))
}

/// The reports of the containers taken in turn, as one.
pub(super) struct Turns {
    total: usize,
    report: ReloadReport,
}

impl Turns {
    pub(super) fn new(total: usize) -> Turns {
        Turns {
            total,
            report: ReloadReport::default(),
        }
    }

    /// Adds one container's result; a failure, returned, names the
    /// container and carries everything seen so far, so a rollback knows
    /// what was touched.
    pub(super) fn take(
        &mut self,
        name: &str,
        result: Result<ReloadReport, ReloadFailure>,
    ) -> Option<ReloadFailure> {
        let turn = self.report.containers.len() + 1;
        match result {
            Ok(one) => {
                self.absorb(name, one);
                None
            }
            Err(failure) => {
                self.absorb(name, failure.report);
                Some(ReloadFailure {
                    proof: failure.proof,
                    message: format!(
                        "container {name} ({turn} of {}): {}",
                        self.total, failure.message
                    ),
                    report: self.report.clone(),
                })
            }
        }
    }

    fn absorb(&mut self, name: &str, one: ReloadReport) {
        let report = &mut self.report;
        if report.containers.is_empty() {
            report.master_pid = one.master_pid;
            report.new_master_pid = one.new_master_pid;
            report.delivery = one.delivery;
        }
        report.old_workers.extend(one.old_workers);
        report.new_workers.extend(one.new_workers);
        report.signals.extend(one.signals);
        report.started |= one.started;
        report.containers.push(name.to_string());
    }

    pub(super) fn done(self) -> ReloadReport {
        self.report
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reload::place::{Delivery, Engine};
    use crate::reload::signal::{Outcome, SignalRecord};

    fn one(master: u32, old: &[u32], new: &[u32]) -> ReloadReport {
        ReloadReport {
            master_pid: Some(master),
            old_workers: old.to_vec(),
            new_workers: new.to_vec(),
            delivery: Some(Delivery::ContainerKill),
            signals: vec![SignalRecord {
                signal: "HUP".into(),
                pid: master,
                outcome: Outcome::Sent,
                via: Delivery::ContainerKill,
            }],
            ..Default::default()
        }
    }

    #[test]
    fn turns_add_up_and_a_failure_names_its_container_and_keeps_what_was_touched() {
        let mut turns = Turns::new(3);
        assert!(turns
            .take("shop-web-1", Ok(one(500, &[501], &[511])))
            .is_none());
        let failure = ReloadFailure {
            proof: Proof::Workers,
            message: "workers not replaced within 30s".into(),
            report: one(600, &[601], &[]),
        };
        let failed = turns.take("shop-web-2", Err(failure)).expect("a failure");
        assert_eq!(failed.proof, Proof::Workers);
        assert_eq!(
            failed.message,
            "container shop-web-2 (2 of 3): workers not replaced within 30s"
        );
        assert_eq!(failed.report.containers, vec!["shop-web-1", "shop-web-2"]);
        assert_eq!(failed.report.master_pid, Some(500));
        assert_eq!(failed.report.signals.len(), 2);
        assert!(failed.report.server_touched());
    }

    #[test]
    fn members_are_listed_by_compose_labels_sorted_and_once() {
        assert_eq!(
            container::parse_members(
                "engine=docker\nrc=0\nWARNING: a warning\nherd-data /shop-web-2 com.docker.compose.oneoff=False,com.docker.compose.service=web\n\
                 herd-data shop-web-1 map[com.docker.compose.oneoff:False]\nherd-data shop-web-2 x=y\n\
                 herd-data shop-web-run-1f2e com.docker.compose.oneoff=True\n"
            ),
            Members::Found {
                engine: Engine::Docker,
                names: vec!["shop-web-1".into(), "shop-web-2".into()]
            }
        );
        assert_eq!(
            container::parse_members("engine=podman\nrc=0\n\n"),
            Members::Found {
                engine: Engine::Podman,
                names: vec![]
            }
        );
        let script = container::members_query(Some(Engine::Podman), "shop", "web", "");
        assert!(
            script.contains("ps -a --filter label=com.docker.compose.project=shop --filter label=com.docker.compose.service=web"),
            "{script}"
        );
    }
}
