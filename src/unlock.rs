//! `herd unlock`: removing deploy locks left by a controller that died, on
//! the targeted hosts, whoever holds them, and saying whose they were.

use std::collections::HashMap;
use std::time::Duration;

use futures::future::join_all;

use crate::engine::lock;
use crate::plan::Plan;
use crate::transport::{Connection, Connector, TransportError};

pub struct Unlocked {
    pub host: String,
    /// Who held the lock that was removed; `None` when there was none.
    pub result: Result<Option<String>, TransportError>,
    /// Another host listed before this one has the same lock file (one
    /// machine and account under two names): that host's line says it all.
    pub same_as: Option<String>,
}

pub async fn unlock_all<C: Connector>(
    plan: &Plan,
    connector: &C,
    timeout: Duration,
) -> Vec<Unlocked> {
    let mut first_with: HashMap<lock::LockKey, &str> = HashMap::new();
    let same_as: Vec<Option<String>> = plan
        .hosts
        .iter()
        .map(|host| {
            let key = lock::LockKey::new(&host.target, &host.vars);
            match first_with.get(&key) {
                Some(first) => Some(first.to_string()),
                None => {
                    first_with.insert(key, &host.name);
                    None
                }
            }
        })
        .collect();
    join_all(
        plan.hosts
            .iter()
            .zip(same_as)
            .map(|(host, same_as)| async move {
                let result = match same_as {
                    Some(_) => Ok(None),
                    None => {
                        async {
                            let connection = connector.connect(&host.target).await?;
                            let removed = lock::break_lock(
                                &connection,
                                &lock::lock_path(&host.vars),
                                timeout,
                            )
                            .await;
                            connection.close().await;
                            removed
                        }
                        .await
                    }
                };
                Unlocked {
                    host: host.name.clone(),
                    result,
                    same_as,
                }
            }),
    )
    .await
}

pub fn render(outcomes: &[Unlocked]) -> String {
    outcomes
        .iter()
        .map(|o| match (&o.same_as, &o.result) {
            (Some(first), _) => format!("{}: the same deploy lock as {first}\n", o.host),
            (None, Ok(Some(holder))) => {
                format!("{}: removed the deploy lock held by {holder}\n", o.host)
            }
            (None, Ok(None)) => format!("{}: no deploy lock\n", o.host),
            (None, Err(error)) => format!("{}: FAILED: {error}\n", o.host),
        })
        .collect()
}
