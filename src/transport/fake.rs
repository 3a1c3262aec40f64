//! A scripted transport for engine tests: each host answers commands from a
//! list of rules, and every command it was asked to run is recorded.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::{Connection, Connector, ExecOutput, Target, TransportError};

/// How a host answers a command containing `pattern`.
#[derive(Debug, Clone)]
pub struct Rule {
    pub pattern: String,
    pub exit_code: u32,
    pub stdout: String,
    pub stderr: String,
    pub delay: Duration,
}

impl Rule {
    pub fn new(pattern: &str, exit_code: u32) -> Rule {
        Rule {
            pattern: pattern.to_string(),
            exit_code,
            stdout: String::new(),
            stderr: String::new(),
            delay: Duration::ZERO,
        }
    }

    pub fn stdout(mut self, text: &str) -> Rule {
        self.stdout = text.to_string();
        self
    }

    pub fn stderr(mut self, text: &str) -> Rule {
        self.stderr = text.to_string();
        self
    }

    pub fn delay(mut self, delay: Duration) -> Rule {
        self.delay = delay;
        self
    }
}

#[derive(Debug, Clone, Default)]
pub struct FakeHost {
    pub unreachable: Option<TransportError>,
    pub rules: Vec<Rule>,
}

/// Every host answers exit 0 with no output unless a rule says otherwise.
#[derive(Debug, Clone, Default)]
pub struct FakeConnector {
    pub hosts: HashMap<String, FakeHost>,
    /// (host, command or "upload DEST"), in the order they happened.
    pub log: Arc<Mutex<Vec<(String, String)>>>,
}

impl FakeConnector {
    pub fn rule(mut self, host: &str, rule: Rule) -> Self {
        self.hosts
            .entry(host.to_string())
            .or_default()
            .rules
            .push(rule);
        self
    }

    pub fn unreachable(mut self, host: &str) -> Self {
        self.hosts.entry(host.to_string()).or_default().unreachable =
            Some(TransportError::Connect {
                address: host.to_string(),
                port: 22,
                reason: "Connection refused".to_string(),
            });
        self
    }

    /// Commands run on `host`, in order.
    pub fn commands(&self, host: &str) -> Vec<String> {
        self.log
            .lock()
            .map(|log| {
                log.iter()
                    .filter(|(h, _)| h == host)
                    .map(|(_, c)| c.clone())
                    .collect()
            })
            .unwrap_or_default()
    }
}

pub struct FakeConnection {
    host: String,
    script: FakeHost,
    log: Arc<Mutex<Vec<(String, String)>>>,
}

impl Connector for FakeConnector {
    type Connection = FakeConnection;

    async fn connect(&self, target: &Target) -> Result<FakeConnection, TransportError> {
        let script = self.hosts.get(&target.name).cloned().unwrap_or_default();
        if let Some(error) = script.unreachable.clone() {
            return Err(error);
        }
        Ok(FakeConnection {
            host: target.name.clone(),
            script,
            log: self.log.clone(),
        })
    }
}

impl FakeConnection {
    fn record(&self, entry: String) {
        if let Ok(mut log) = self.log.lock() {
            log.push((self.host.clone(), entry));
        }
    }
}

impl Connection for FakeConnection {
    async fn exec(&self, command: &str, timeout: Duration) -> Result<ExecOutput, TransportError> {
        self.record(command.to_string());
        let rule = self
            .script
            .rules
            .iter()
            .find(|r| command.contains(&r.pattern))
            .cloned();
        let Some(rule) = rule else {
            return Ok(ExecOutput {
                exit_code: Some(0),
                ..Default::default()
            });
        };
        let answer = async {
            tokio::time::sleep(rule.delay).await;
            ExecOutput {
                exit_code: Some(rule.exit_code),
                stdout: rule.stdout.into_bytes(),
                stderr: rule.stderr.into_bytes(),
            }
        };
        tokio::time::timeout(timeout, answer)
            .await
            .map_err(|_| TransportError::Timeout {
                what: "the command".to_string(),
                after: timeout,
            })
    }

    async fn upload(
        &self,
        _data: &[u8],
        dest: &str,
        _mode: u32,
        _timeout: Duration,
    ) -> Result<(), TransportError> {
        self.record(format!("upload {dest}"));
        Ok(())
    }

    async fn close(&self) {}
}
