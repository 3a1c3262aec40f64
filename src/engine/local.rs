//! Commands run on the controller: `local: true` steps and the playbook's
//! hooks. Each runs as `/bin/sh -c SCRIPT` in a process group of its own,
//! so that on timeout or Ctrl-C the whole group (the shell and whatever it
//! started) is stopped: SIGTERM, then SIGKILL after a short grace.

use std::path::Path;
use std::process::Stdio;
use std::sync::Mutex;
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::process::Command;

use super::Cancel;

/// How long a stopped process group gets between SIGTERM and SIGKILL.
const GRACE: Duration = Duration::from_secs(2);

/// The process groups of controller commands running now: a second Ctrl-C
/// ends herd at once, and must not leave them running on their own.
static RUNNING: Mutex<Vec<libc::pid_t>> = Mutex::new(Vec::new());

/// Sends SIGKILL to every controller command still running; for herd's
/// exit on a second Ctrl-C.
pub fn kill_all() {
    if let Ok(groups) = RUNNING.lock() {
        for &group in groups.iter() {
            // SAFETY: killpg only sends a signal, to a group herd started.
            unsafe {
                libc::killpg(group, libc::SIGKILL);
            }
        }
    }
}

/// Keeps a group in [`RUNNING`] while it lives.
struct Registered(Option<libc::pid_t>);

impl Registered {
    fn new(group: Option<libc::pid_t>) -> Self {
        if let (Some(group), Ok(mut groups)) = (group, RUNNING.lock()) {
            groups.push(group);
        }
        Registered(group)
    }
}

impl Drop for Registered {
    fn drop(&mut self) {
        if let (Some(group), Ok(mut groups)) = (self.0, RUNNING.lock()) {
            groups.retain(|&g| g != group);
        }
    }
}

/// What a controller command did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LocalOutput {
    /// `None` when it did not run to an exit (not started, killed, timed out).
    pub exit_code: Option<u32>,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    /// Why it did not run to an exit code.
    pub error: Option<String>,
}

impl LocalOutput {
    pub fn success(&self) -> bool {
        self.exit_code == Some(0) && self.error.is_none()
    }

    /// A one-line reason for a failure: the error, or the exit code.
    pub fn reason(&self) -> String {
        match (&self.error, self.exit_code) {
            (Some(error), _) => error.clone(),
            (None, Some(code)) => format!("exited with code {code}"),
            (None, None) => "ended without an exit code".to_string(),
        }
    }
}

/// Why a command was stopped before it ended.
enum Stop {
    Timeout,
    Cancelled,
}

/// Runs `script` with `/bin/sh` from `dir`, with `env` added to herd's
/// own environment. It is stopped after `timeout`, or when `cancel` turns
/// true (Ctrl-C); `None` means only the timeout stops it.
///
/// The script reaches the shell in its environment, not on its command
/// line, so values rendered into it (secrets too) are not shown by `ps` to
/// other users. The command is over when the shell exits: a background
/// child it left may keep running, and what it prints after [`DRAIN`] is
/// not waited for. Each stream keeps its first [`OUTPUT_LIMIT`] bytes.
pub async fn run(
    script: &str,
    dir: &Path,
    env: &[(String, String)],
    timeout: Duration,
    cancel: Option<Cancel>,
) -> LocalOutput {
    let mut command = Command::new("/bin/sh");
    command
        .arg("-c")
        .arg(SCRIPT_RUNNER)
        .current_dir(dir)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .env(SCRIPT_VAR, script)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(error) => {
            return LocalOutput {
                error: Some(format!(
                    "cannot start /bin/sh on the controller in {}: {error}",
                    dir.display()
                )),
                ..LocalOutput::default()
            }
        }
    };
    let group = child.id().and_then(|id| libc::pid_t::try_from(id).ok());
    let _registered = Registered::new(group);
    let stdout = Collector::start(child.stdout.take());
    let stderr = Collector::start(child.stderr.take());
    let stop = tokio::select! {
        status = child.wait() => {
            let (exit_code, error) = match status {
                Ok(status) => match status.code() {
                    Some(code) => (u32::try_from(code).ok(), None),
                    None => (None, Some(signalled(status))),
                },
                Err(error) => (None, Some(format!("waiting for the command on the controller: {error}"))),
            };
            return LocalOutput {
                exit_code,
                stdout: stdout.finish().await,
                stderr: stderr.finish().await,
                error,
            };
        }
        _ = tokio::time::sleep(timeout) => Stop::Timeout,
        _ = cancelled(cancel) => Stop::Cancelled,
    };
    let error = match stop {
        Stop::Timeout => crate::transport::TransportError::Timeout {
            what: "the command on the controller".to_string(),
            after: timeout,
        }
        .to_string(),
        Stop::Cancelled => "interrupted: the command on the controller was stopped".to_string(),
    };
    stop_group(group, &mut child).await;
    LocalOutput {
        exit_code: None,
        stdout: stdout.finish().await,
        stderr: stderr.finish().await,
        error: Some(error),
    }
}

/// The environment variable that carries the script, and the command line
/// that runs it (the variable is gone before the script starts).
const SCRIPT_VAR: &str = "HERD_LOCAL_SCRIPT";
const SCRIPT_RUNNER: &str =
    "herd_local_script=$HERD_LOCAL_SCRIPT; unset HERD_LOCAL_SCRIPT; eval \"$herd_local_script\"";

/// How long the output of a command that exited is still read (a
/// background child may hold its pipes open).
const DRAIN: Duration = Duration::from_millis(500);

/// Output kept per stream, as for commands on hosts.
const OUTPUT_LIMIT: usize = crate::transport::OUTPUT_LIMIT;

/// Reads one stream in the background, keeping its first [`OUTPUT_LIMIT`]
/// bytes and draining the rest.
struct Collector {
    bytes: std::sync::Arc<Mutex<Vec<u8>>>,
    reading: Option<tokio::task::JoinHandle<()>>,
}

impl Collector {
    fn start<R: tokio::io::AsyncRead + Unpin + Send + 'static>(stream: Option<R>) -> Collector {
        let bytes = std::sync::Arc::new(Mutex::new(Vec::new()));
        let reading = stream.map(|mut stream| {
            let bytes = bytes.clone();
            tokio::spawn(async move {
                let mut chunk = vec![0u8; 16 * 1024];
                while let Ok(read) = stream.read(&mut chunk).await {
                    if read == 0 {
                        break;
                    }
                    if let Ok(mut kept) = bytes.lock() {
                        let room = OUTPUT_LIMIT.saturating_sub(kept.len());
                        kept.extend_from_slice(&chunk[..read.min(room)]);
                    }
                }
            })
        });
        Collector { bytes, reading }
    }

    /// What was read, once the stream ended or [`DRAIN`] passed.
    async fn finish(mut self) -> Vec<u8> {
        if let Some(reading) = self.reading.take() {
            let abort = reading.abort_handle();
            if tokio::time::timeout(DRAIN, reading).await.is_err() {
                abort.abort();
            }
        }
        self.bytes
            .lock()
            .map(|mut b| std::mem::take(&mut *b))
            .unwrap_or_default()
    }
}

/// SIGTERM to the group, SIGKILL after [`GRACE`] if the shell is still there.
async fn stop_group(group: Option<libc::pid_t>, child: &mut tokio::process::Child) {
    for signal in [libc::SIGTERM, libc::SIGKILL] {
        if let Some(group) = group {
            // SAFETY: killpg only sends a signal; the group is the child's own.
            unsafe {
                libc::killpg(group, signal);
            }
        }
        if tokio::time::timeout(GRACE, child.wait()).await.is_ok() {
            if signal == libc::SIGTERM {
                // The shell went; whatever else of its group ignored TERM goes now.
                if let Some(group) = group {
                    // SAFETY: as above.
                    unsafe {
                        libc::killpg(group, libc::SIGKILL);
                    }
                }
            }
            return;
        }
    }
}

/// Resolves when the run is cancelled; never without a cancel channel (or
/// once nothing can cancel any more).
async fn cancelled(cancel: Option<Cancel>) {
    if let Some(mut cancel) = cancel {
        if cancel.wait_for(|stop| *stop).await.is_ok() {
            return;
        }
    }
    std::future::pending::<()>().await;
}

fn signalled(status: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match status.signal() {
        Some(signal) => format!("killed by signal {signal}"),
        None => "ended without an exit code".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The script is not on the shell's command line, where `ps` shows it
    /// to every user, and its variable is gone before it runs.
    #[tokio::test]
    async fn the_script_is_kept_off_the_command_line() {
        let dir = tempfile::tempdir().expect("temp dir");
        let out = run(
            "tr '\\0' ' ' < /proc/$$/cmdline; echo; echo \"${HERD_LOCAL_SCRIPT:-unset}\"; : s3cr3t-t0ken",
            dir.path(),
            &[],
            Duration::from_secs(10),
            None,
        )
        .await;
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.success(), "{out:?}");
        assert!(
            stdout.starts_with("/bin/sh -c herd_local_script="),
            "{stdout}"
        );
        assert!(!stdout.contains("s3cr3t"), "{stdout}");
        assert!(stdout.ends_with("\nunset\n"), "{stdout}");
    }

    /// A command that leaves a background child is over when its shell
    /// exits, and its output is kept up to the limit.
    #[tokio::test]
    async fn a_background_child_does_not_hold_the_command_and_output_is_bounded() {
        let dir = tempfile::tempdir().expect("temp dir");
        let started = std::time::Instant::now();
        let out = run(
            "echo notified; sleep 30 &",
            dir.path(),
            &[],
            Duration::from_secs(10),
            None,
        )
        .await;
        assert!(out.success(), "{out:?}");
        assert_eq!(String::from_utf8_lossy(&out.stdout), "notified\n");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );

        let big = run(
            "head -c 20000000 /dev/zero",
            dir.path(),
            &[],
            Duration::from_secs(30),
            None,
        )
        .await;
        assert!(big.success(), "{:?}", big.error);
        assert_eq!(big.stdout.len(), OUTPUT_LIMIT);
    }

    #[tokio::test]
    async fn runs_in_the_directory_with_the_environment() {
        let dir = tempfile::tempdir().expect("temp dir");
        let out = run(
            "pwd; echo \"$GREETING\"; echo oops >&2; exit 3",
            dir.path(),
            &[("GREETING".into(), "hello there".into())],
            Duration::from_secs(10),
            None,
        )
        .await;
        let pwd = dir.path().canonicalize().expect("canonical dir");
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            format!("{}\nhello there\n", pwd.display())
        );
        assert_eq!(String::from_utf8_lossy(&out.stderr), "oops\n");
        assert_eq!((out.exit_code, out.error.as_deref()), (Some(3), None));
        assert_eq!(out.reason(), "exited with code 3");
    }

    /// The whole group goes on timeout: a background child writing a file
    /// later never gets to write it.
    #[tokio::test]
    async fn a_timeout_kills_the_whole_process_group() {
        let dir = tempfile::tempdir().expect("temp dir");
        let started = std::time::Instant::now();
        let out = run(
            "(sleep 2; touch late) & echo started; sleep 30",
            dir.path(),
            &[],
            Duration::from_millis(300),
            None,
        )
        .await;
        assert_eq!(
            out.error.as_deref(),
            Some("the command on the controller timed out after 300ms")
        );
        assert_eq!(String::from_utf8_lossy(&out.stdout), "started\n");
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(2500)).await;
        assert!(
            !dir.path().join("late").exists(),
            "the background child survived"
        );
    }

    #[tokio::test]
    async fn ctrl_c_stops_the_command() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (tx, rx) = tokio::sync::watch::channel(false);
        let running = tokio::spawn({
            let dir = dir.path().to_path_buf();
            async move { run("sleep 30", &dir, &[], Duration::from_secs(60), Some(rx)).await }
        });
        tokio::time::sleep(Duration::from_millis(100)).await;
        tx.send(true).expect("cancel");
        let out = tokio::time::timeout(Duration::from_secs(5), running)
            .await
            .expect("stopped in time")
            .expect("task");
        assert_eq!(
            out.error.as_deref(),
            Some("interrupted: the command on the controller was stopped")
        );
    }
}
