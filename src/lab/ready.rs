//! Waiting for a lab host to come up: sshd's banner, the app server's workers and
//! its health check, with the tail of the right log when it does not.

use std::fs;
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::Path;
use std::time::{Duration, Instant};

use super::start::WORKERS;
use super::{process, read_pidfile, LabError, LabHost};

/// Polls one host until its sshd greets and its app is healthy with all its
/// workers forked (Gunicorn spawns them a moment apart, and a test counting
/// the worker generation must see the full set); returns the
/// sshd and Gunicorn master PIDs. Gives up early when a daemon that wrote its
/// pidfile has died.
pub(super) fn wait_ready(
    host: &LabHost,
    with_app: bool,
    deadline: Instant,
) -> Result<(u32, Option<u32>), LabError> {
    let mut sshd_pid = None;
    let mut app_ready = !with_app;
    let mut gunicorn_pid = None;
    loop {
        if sshd_pid.is_none() && ssh_greets(&host.address, host.ssh_port) {
            sshd_pid = read_pidfile(&host.sshd_pidfile());
        }
        if !app_ready {
            let previous = gunicorn_pid;
            gunicorn_pid = if host.container.is_some() {
                // No pidfile: the master is found through the engine, asked
                // again only while none is known alive.
                gunicorn_pid
                    .filter(|pid| process::is_alive(*pid))
                    .or_else(|| super::container::master_pid(host))
            } else {
                read_pidfile(&host.pidfile).or(gunicorn_pid)
            };
            if let (Some(pid), None) = (previous, gunicorn_pid) {
                return Err(start_failed(
                    host,
                    host.server.name(),
                    &format!("its master {pid} exited with its container"),
                    &host.app_log(),
                ));
            }
            app_ready = gunicorn_pid.is_some_and(|pid| process::children(pid).len() >= WORKERS)
                && http_healthy(&host.address, host.http_port);
        }
        if let (Some(sshd), true) = (sshd_pid, app_ready) {
            return Ok((sshd, gunicorn_pid.or_else(|| read_pidfile(&host.pidfile))));
        }
        if let Some(pid) = gunicorn_pid.filter(|pid| !process::is_alive(*pid)) {
            return Err(start_failed(
                host,
                host.server.name(),
                &format!("its master {pid} exited"),
                &host.app_log(),
            ));
        }
        if Instant::now() >= deadline {
            return Err(if sshd_pid.is_none() {
                start_failed(
                    host,
                    "sshd",
                    "it did not accept connections in time",
                    &host.sshd_log(),
                )
            } else {
                let reason = format!("{} did not answer in time", host.healthz_url());
                start_failed(host, host.server.name(), &reason, &host.app_log())
            });
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

fn connect(address: &str, port: u16) -> Option<TcpStream> {
    let target = (address, port).to_socket_addrs().ok()?.next()?;
    let stream = TcpStream::connect_timeout(&target, PROBE_TIMEOUT).ok()?;
    stream.set_read_timeout(Some(PROBE_TIMEOUT)).ok()?;
    stream.set_write_timeout(Some(PROBE_TIMEOUT)).ok()?;
    Some(stream)
}

/// True once sshd sends its version banner (accepting alone could be the
/// kernel's backlog).
fn ssh_greets(address: &str, port: u16) -> bool {
    let Some(mut stream) = connect(address, port) else {
        return false;
    };
    let mut banner = [0u8; 8];
    stream.read_exact(&mut banner).is_ok() && &banner == b"SSH-2.0-"
}

/// True once `GET /healthz` answers 200 with `ok ...`.
fn http_healthy(address: &str, port: u16) -> bool {
    healthz_body(address, port).is_some_and(|body| body.starts_with("ok "))
}

/// What a host's app answers on `/healthz` (`ok v1`), when it answers 200.
#[cfg(test)]
pub(super) fn healthz(host: &LabHost) -> Option<String> {
    healthz_body(&host.address, host.http_port).map(|body| body.trim().to_string())
}

/// The body of a 200 answer to `GET /healthz`.
fn healthz_body(address: &str, port: u16) -> Option<String> {
    let mut stream = connect(address, port)?;
    let request = format!("GET /healthz HTTP/1.0\r\nHost: {address}:{port}\r\n\r\n");
    stream.write_all(request.as_bytes()).ok()?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).ok()?;
    let response = String::from_utf8_lossy(&response);
    let status_ok = response
        .lines()
        .next()
        .is_some_and(|line| line.split_whitespace().nth(1) == Some("200"));
    if !status_ok {
        return None;
    }
    response.split("\r\n\r\n").nth(1).map(str::to_string)
}

pub(super) fn start_failed(
    host: &LabHost,
    what: &'static str,
    reason: &str,
    log: &Path,
) -> LabError {
    LabError::StartFailed {
        host: host.name.clone(),
        what,
        reason: reason.to_string(),
        log: log.to_path_buf(),
        log_tail: tail(log, 20),
    }
}

fn tail(path: &Path, lines: usize) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
