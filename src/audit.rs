//! `herd audit`: the last lines of each targeted host's audit log (see
//! `engine::audit` for what a run writes there), read over SSH, for a
//! person or as JSON.

use futures::future::join_all;

use crate::engine::audit;
use crate::plan::Plan;
use crate::transport::{Connection, Connector, TransportError};

/// Each host's last `last` lines, in the plan's order.
pub async fn read_all<C: Connector>(
    plan: &Plan,
    connector: &C,
    last: usize,
    timeout: std::time::Duration,
) -> Vec<Result<Vec<String>, TransportError>> {
    join_all(plan.hosts.iter().map(|host| async move {
        let connection = connector.connect(&host.target).await?;
        let lines =
            audit::read_last(&connection, &audit::audit_path(&host.vars), last, timeout).await;
        connection.close().await;
        lines
    }))
    .await
}

/// The text for stdout (host name first, or one JSON object per line), and
/// the hosts that could not be read, with why.
pub fn render(
    plan: &Plan,
    results: Vec<Result<Vec<String>, TransportError>>,
    json: bool,
) -> (String, Vec<(String, String)>) {
    let mut text = String::new();
    let mut failed = Vec::new();
    for (host, result) in plan.hosts.iter().zip(results) {
        match result {
            Ok(lines) if lines.is_empty() && !json => {
                text.push_str(&format!("{}: no audit log lines\n", host.name));
            }
            Ok(lines) => {
                for line in lines {
                    if json {
                        text.push_str(&audit::show_json(&host.name, &line));
                    } else {
                        // The log is the host's text: one line, no escapes.
                        let shown = crate::shell::one_line(&audit::show(&line));
                        text.push_str(&format!("{}: {shown}", host.name));
                    }
                    text.push('\n');
                }
            }
            Err(error) => failed.push((host.name.clone(), error.to_string())),
        }
    }
    (text, failed)
}
