//! `herd unlock`: removing deploy locks left by a controller that died, on
//! the targeted hosts, whoever holds them, and saying whose they were.

use std::time::Duration;

use futures::future::join_all;

use crate::engine::lock;
use crate::plan::Plan;
use crate::transport::{Connection, Connector, TransportError};

pub struct Unlocked {
    pub host: String,
    /// Who held the lock that was removed; `None` when there was none.
    pub result: Result<Option<String>, TransportError>,
}

pub async fn unlock_all<C: Connector>(
    plan: &Plan,
    connector: &C,
    timeout: Duration,
) -> Vec<Unlocked> {
    join_all(plan.hosts.iter().map(|host| async move {
        let result = async {
            let connection = connector.connect(&host.target).await?;
            let removed =
                lock::break_lock(&connection, &lock::lock_path(&host.vars), timeout).await;
            connection.close().await;
            removed
        }
        .await;
        Unlocked {
            host: host.name.clone(),
            result,
        }
    }))
    .await
}

pub fn render(outcomes: &[Unlocked]) -> String {
    outcomes
        .iter()
        .map(|o| match &o.result {
            Ok(Some(holder)) => format!("{}: removed the deploy lock held by {holder}\n", o.host),
            Ok(None) => format!("{}: no deploy lock\n", o.host),
            Err(error) => format!("{}: FAILED: {error}\n", o.host),
        })
        .collect()
}
