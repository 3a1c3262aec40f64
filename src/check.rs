//! `herd check`: what a rollout would find on each host, changing nothing:
//! reachability, host key, authentication, sudo, and the master PID a reload
//! would signal (and how it was found, or why none can be).

use std::sync::Arc;

use futures::future::join_all;
use serde::Serialize;
use tokio::sync::Semaphore;

use crate::plan::{Plan, PlannedHost};
use crate::reload::{self, NotFound};
use crate::shell::wrap;
use crate::transport::{Connection, Connector, TransportError};

/// One host's findings; `None` where the check could not get that far.
#[derive(Debug, Clone, Serialize)]
pub struct HostCheck {
    pub host: String,
    pub address: String,
    pub reachable: Verdict,
    pub host_key: Verdict,
    pub auth: Verdict,
    pub sudo: Verdict,
    pub master: Verdict,
}

#[derive(Debug, Clone, Serialize)]
pub struct Verdict {
    pub ok: Option<bool>,
    pub detail: String,
}

impl Verdict {
    fn ok(detail: impl Into<String>) -> Self {
        Verdict {
            ok: Some(true),
            detail: detail.into(),
        }
    }
    fn bad(detail: impl Into<String>) -> Self {
        Verdict {
            ok: Some(false),
            detail: detail.into(),
        }
    }
    fn unknown() -> Self {
        Verdict {
            ok: None,
            detail: "-".to_string(),
        }
    }
}

impl HostCheck {
    /// Everything that was checked passed (an unchecked sudo is no problem).
    pub fn healthy(&self) -> bool {
        [&self.reachable, &self.host_key, &self.auth, &self.master]
            .iter()
            .all(|v| v.ok != Some(false))
    }
}

/// Checks every host of the plan, `handshakes` at a time.
pub async fn check_all<C: Connector>(
    plan: &Plan,
    connector: Arc<C>,
    handshakes: usize,
) -> Vec<HostCheck> {
    let limit = Arc::new(Semaphore::new(handshakes.max(1)));
    let checks = plan.hosts.iter().map(|host| {
        let connector = connector.clone();
        let limit = limit.clone();
        async move {
            let _permit = limit.acquire_owned().await.ok();
            check_host(plan, host, connector.as_ref()).await
        }
    });
    join_all(checks).await
}

async fn check_host<C: Connector>(plan: &Plan, host: &PlannedHost, connector: &C) -> HostCheck {
    let mut check = HostCheck {
        host: host.name.clone(),
        address: format!(
            "{}@{}:{}",
            host.target.user, host.target.address, host.target.port
        ),
        reachable: Verdict::unknown(),
        host_key: Verdict::unknown(),
        auth: Verdict::unknown(),
        sudo: Verdict::unknown(),
        master: Verdict::unknown(),
    };
    let connection = match connector.connect(&host.target).await {
        Ok(connection) => connection,
        Err(error) => {
            match &error {
                TransportError::Connect { .. }
                | TransportError::Timeout { .. }
                | TransportError::Protocol(_) => {
                    check.reachable = Verdict::bad(error.to_string());
                }
                TransportError::UnknownHostKey { .. }
                | TransportError::ChangedHostKey { .. }
                | TransportError::RevokedHostKey { .. }
                | TransportError::HostCertificate { .. }
                | TransportError::KnownHosts { .. } => {
                    check.reachable = Verdict::ok("yes");
                    check.host_key = Verdict::bad(error.to_string());
                }
                TransportError::Auth { .. } | TransportError::Upload { .. } => {
                    check.reachable = Verdict::ok("yes");
                    check.host_key = Verdict::ok("known");
                    check.auth = Verdict::bad(error.to_string());
                }
            }
            return check;
        }
    };
    check.reachable = Verdict::ok("yes");
    check.host_key = Verdict::ok("known");
    check.auth = Verdict::ok(host.target.user.clone());
    let timeout = plan
        .reload
        .as_ref()
        .map_or(std::time::Duration::from_secs(30), |r| r.command_timeout);
    check.sudo = match connection.exec(&wrap("true", true, None), timeout).await {
        Ok(output) if output.success() => Verdict::ok("yes"),
        Ok(output) => {
            let said = String::from_utf8_lossy(&output.stderr);
            if said.contains("password") {
                Verdict::bad("no: sudo wants a password")
            } else if said.contains("not found") {
                Verdict::bad("no: sudo is not installed")
            } else {
                Verdict::bad(format!(
                    "no: {}",
                    said.lines().next().unwrap_or("refused").trim()
                ))
            }
        }
        Err(error) => Verdict::bad(error.to_string()),
    };
    if let Some(stage) = plan.reload.as_ref().filter(|r| r.place.is_some()) {
        check.master = match stage.render(&plan.renderer, &host.vars) {
            Err(error) => Verdict::bad(error.to_string()),
            Ok(spec) => {
                // A pidfile or unit made from a secret is shown masked.
                let shown = |message: String| {
                    stage.shown_message(&plan.renderer, &host.vars, &host.shown_vars, &message)
                };
                // A Compose service: each of its containers.
                let each = match reload::containers_of(&connection, &spec).await {
                    Err(failure) => Err(failure.message),
                    Ok(None) => Ok(vec![spec]),
                    Ok(Some(each)) => Ok(each.into_iter().map(|(_, one)| one).collect()),
                };
                match each {
                    Err(message) => Verdict::bad(shown(message)),
                    Ok(each) => {
                        let mut said = Vec::new();
                        let mut ok = true;
                        for one in &each {
                            match reload::find_master(&connection, one).await {
                                Ok(found) => said.push(format!(
                                    "{} ({}, {} workers, signal by {})",
                                    found.master.pid,
                                    found.how,
                                    found.master.workers.len(),
                                    found.delivery.name()
                                )),
                                Err(NotFound::Unreadable(error)) => {
                                    ok = false;
                                    said.push(error.to_string());
                                }
                                Err(NotFound::Discovery(error)) => {
                                    ok = false;
                                    said.push(error.to_string());
                                }
                            }
                        }
                        let said = shown(said.join("; "));
                        if ok {
                            Verdict::ok(said)
                        } else {
                            Verdict::bad(said)
                        }
                    }
                }
            }
        };
    }
    connection.close().await;
    check
}

/// The table `herd check` prints.
pub fn render(checks: &[HostCheck]) -> String {
    let cell = |v: &Verdict| match v.ok {
        None => "-".to_string(),
        Some(true) => v.detail.clone(),
        Some(false) => "FAIL".to_string(),
    };
    let width = checks
        .iter()
        .map(|c| c.host.len())
        .max()
        .unwrap_or(4)
        .max(4);
    let mut out = format!(
        "{:width$}  {:9}  {:8}  {:12}  {:5}  MASTER\n",
        "HOST", "REACHABLE", "HOST KEY", "AUTH", "SUDO"
    );
    for c in checks {
        let master = match c.master.ok {
            Some(false) => format!("none: {}", c.master.detail),
            _ => cell(&c.master),
        };
        out.push_str(&format!(
            "{:width$}  {:9}  {:8}  {:12}  {:5}  {}\n",
            c.host,
            cell(&c.reachable),
            cell(&c.host_key),
            cell(&c.auth),
            if c.sudo.ok == Some(false) {
                "no".to_string()
            } else {
                cell(&c.sudo)
            },
            master
        ));
    }
    let problems: Vec<String> = checks
        .iter()
        .flat_map(|c| {
            [
                ("reachable", &c.reachable),
                ("host key", &c.host_key),
                ("auth", &c.auth),
            ]
            .into_iter()
            .filter(|(_, v)| v.ok == Some(false))
            .map(move |(what, v)| format!("{}: {what}: {}", c.host, v.detail))
        })
        .collect();
    if !problems.is_empty() {
        out.push('\n');
        for problem in problems {
            out.push_str(&problem);
            out.push('\n');
        }
    }
    out
}
