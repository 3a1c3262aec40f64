//! A scripted transport for engine tests: each host answers commands from a
//! list of rules, and every command it was asked to run is recorded.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

use super::{Connection, Connector, ExecOutput, Target, TransportError};

/// How a host answers a command containing `pattern`.
#[derive(Debug, Clone)]
pub struct Rule {
    pub pattern: String,
    pub exit_code: u32,
    pub stdout: String,
    pub stderr: String,
    pub delay: Duration,
    /// Successive stdouts: each call takes the next, the last one repeats.
    pub sequence: Vec<String>,
    calls: Arc<AtomicUsize>,
}

impl Rule {
    pub fn new(pattern: &str, exit_code: u32) -> Rule {
        Rule {
            pattern: pattern.to_string(),
            exit_code,
            stdout: String::new(),
            stderr: String::new(),
            delay: Duration::ZERO,
            sequence: Vec::new(),
            calls: Arc::new(AtomicUsize::new(0)),
        }
    }

    pub fn sequence(mut self, outputs: Vec<String>) -> Rule {
        self.sequence = outputs;
        self
    }

    fn next_stdout(&self) -> String {
        let call = self.calls.fetch_add(1, Ordering::SeqCst);
        match self.sequence.len() {
            0 => self.stdout.clone(),
            n => self.sequence[call.min(n - 1)].clone(),
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
    /// The raw HTTP response a tunnel answers with; no tunnel when `None`.
    pub http: Option<String>,
    /// How long connecting takes.
    pub connect_delay: Duration,
    /// The tunnel's server reads the request and never answers.
    pub http_hangs: bool,
}

/// Every host answers exit 0 with no output unless a rule says otherwise.
#[derive(Debug, Clone, Default)]
pub struct FakeConnector {
    pub hosts: HashMap<String, FakeHost>,
    /// (host, command or "upload DEST"), in the order they happened.
    pub log: Arc<Mutex<Vec<(String, String)>>>,
    /// (host, when) of every connection closed, in the order they happened.
    pub closed: Arc<Mutex<Vec<(String, tokio::time::Instant)>>>,
}

impl FakeConnector {
    /// A connection to `host` (port 22, user `deploy`), for tests of what
    /// runs over one connection.
    pub async fn connection_to(&self, host: &str) -> FakeConnection {
        let target = super::Target {
            name: host.to_string(),
            address: host.to_string(),
            port: 22,
            user: "deploy".to_string(),
            identity_files: Vec::new(),
            known_hosts: "known_hosts".into(),
            jump: None,
        };
        super::Connector::connect(self, &target)
            .await
            .expect("the fake connects")
    }

    pub fn rule(mut self, host: &str, rule: Rule) -> Self {
        self.hosts
            .entry(host.to_string())
            .or_default()
            .rules
            .push(rule);
        self
    }

    pub fn http(mut self, host: &str, status: u16, body: &str) -> Self {
        self.hosts.entry(host.to_string()).or_default().http =
            Some(format!("HTTP/1.1 {status} X\r\n\r\n{body}"));
        self
    }

    /// `host`'s health check accepts the request and never answers.
    pub fn http_hanging(mut self, host: &str) -> Self {
        let script = self.hosts.entry(host.to_string()).or_default();
        script.http = Some(String::new());
        script.http_hangs = true;
        self
    }

    /// `host` takes `delay` to connect.
    pub fn slow_to_connect(mut self, host: &str, delay: Duration) -> Self {
        self.hosts
            .entry(host.to_string())
            .or_default()
            .connect_delay = delay;
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
    closed: Arc<Mutex<Vec<(String, tokio::time::Instant)>>>,
}

impl Connector for FakeConnector {
    type Connection = FakeConnection;

    async fn connect(&self, target: &Target) -> Result<FakeConnection, TransportError> {
        let script = self.hosts.get(&target.name).cloned().unwrap_or_default();
        tokio::time::sleep(script.connect_delay).await;
        if let Some(error) = script.unreachable.clone() {
            return Err(error);
        }
        Ok(FakeConnection {
            host: target.name.clone(),
            script,
            log: self.log.clone(),
            closed: self.closed.clone(),
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
    type Tunnel = DuplexStream;

    async fn tunnel(
        &self,
        address: &str,
        port: u16,
        _timeout: Duration,
    ) -> Result<DuplexStream, TransportError> {
        self.record(format!("tunnel {address}:{port}"));
        let Some(response) = self.script.http.clone() else {
            return Err(TransportError::Connect {
                address: address.to_string(),
                port,
                reason: "Connection refused".to_string(),
            });
        };
        let (client, mut server) = tokio::io::duplex(64 * 1024);
        let hangs = self.script.http_hangs;
        tokio::spawn(async move {
            let mut request = vec![0; 4096];
            let _ = server.read(&mut request).await;
            if hangs {
                // Holds the stream open, silent, until the client goes.
                let _ = server.read(&mut request).await;
                return;
            }
            let _ = server.write_all(response.as_bytes()).await;
        });
        Ok(client)
    }

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
        let stdout = rule.next_stdout();
        let answer = async {
            tokio::time::sleep(rule.delay).await;
            ExecOutput {
                exit_code: Some(rule.exit_code),
                stdout: stdout.into_bytes(),
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
        source: &mut (dyn tokio::io::AsyncRead + Unpin + Send),
        dest: &str,
        _mode: u32,
        timeout: Duration,
        sent: &std::sync::atomic::AtomicU64,
    ) -> Result<(), TransportError> {
        let entry = format!("upload {dest}");
        // The bytes are read (and counted) as a real upload would.
        let read = tokio::io::copy(source, &mut tokio::io::sink())
            .await
            .map_err(|e| TransportError::Upload {
                dest: dest.to_string(),
                reason: e.to_string(),
            })?;
        sent.fetch_add(read, std::sync::atomic::Ordering::Relaxed);
        self.record(entry.clone());
        // A rule matching "upload DEST" slows the upload down.
        let delay = self
            .script
            .rules
            .iter()
            .find(|r| entry.contains(&r.pattern))
            .map_or(Duration::ZERO, |r| r.delay);
        tokio::time::timeout(timeout, tokio::time::sleep(delay))
            .await
            .map_err(|_| TransportError::Timeout {
                what: format!("uploading {dest}"),
                after: timeout,
            })
    }

    async fn close(&self) {
        if let Ok(mut closed) = self.closed.lock() {
            closed.push((self.host.clone(), tokio::time::Instant::now()));
        }
    }
}
