//! One long-lived `/bin/sh` per connection that runs the host's commands one
//! after the other, each in a subshell of its own.
//!
//! A command over a fresh SSH session costs the host a session, a login shell
//! and a `/bin/sh`: on a fleet of small steps that, not the network, is where
//! the time goes. Through this shell a command costs one fork. Each command is
//! sent as `( eval 'SCRIPT' ) </dev/null`, so `cd`, `export`, `set` and `exit`
//! stay inside it and it cannot read the commands that follow; after it the
//! shell prints a marker that no output can forge (a random nonce and a
//! counter) with the exit code on stdout, and the marker alone on stderr.
//! What comes before the markers is the command's output.

use std::time::Duration;

use russh::client::Msg;
use russh::{Channel, ChannelMsg};

use super::{append, describe};
use crate::shell::quote as shell_quote;
use crate::transport::ExecOutput;

/// How a command given to the shell ended, when it did not end normally.
pub(super) enum ShellError {
    /// The command was not sent: nothing ran, another way may be tried.
    NotSent(String),
    /// Past the timeout; the shell's process group was sent TERM.
    TimedOut,
    /// The shell went away while the command ran.
    Lost(String),
}

pub(super) struct Shell {
    channel: Channel<Msg>,
    nonce: String,
    commands: u64,
}

impl Shell {
    /// Opens a session running `/bin/sh` on its stdin (through the login
    /// shell, which `exec`s it), and sees it answer: a login shell that
    /// refuses (`nologin`, a forced command) shows here, before any command
    /// is entrusted to it.
    pub async fn start(
        handle: &super::Handle<super::HostKeyCheck>,
        timeout: Duration,
    ) -> Result<Shell, String> {
        let channel = handle
            .channel_open_session()
            .await
            .map_err(|e| describe(&e))?;
        channel
            .exec(true, "exec /bin/sh")
            .await
            .map_err(|e| describe(&e))?;
        let mut shell = Shell {
            channel,
            nonce: nonce(),
            commands: 0,
        };
        match shell.run(":", timeout).await {
            Ok(output) if output.success() => Ok(shell),
            Ok(_) => Err("the shell does not answer as /bin/sh does".to_string()),
            Err(ShellError::NotSent(why) | ShellError::Lost(why)) => Err(why),
            Err(ShellError::TimedOut) => Err("the shell did not answer".to_string()),
        }
    }

    /// Runs `script` with a deadline. After any error but `NotSent` the shell
    /// must not be used again.
    pub async fn run(&mut self, script: &str, timeout: Duration) -> Result<ExecOutput, ShellError> {
        self.commands += 1;
        // The colon ends the counter: command 3's marker is no prefix of command 31's.
        let marker = format!("{}-{}:", self.nonce, self.commands);
        let line = format!(
            "( eval {} ) </dev/null; printf '%s %s\\n' {marker} \"$?\"; printf '%s\\n' {marker} >&2\n",
            shell_quote(script)
        );
        self.channel
            .data_bytes(line.into_bytes())
            .await
            .map_err(|e| ShellError::NotSent(describe(&e)))?;
        let deadline = tokio::time::Instant::now() + timeout;
        let mut stdout = Framed::new(&marker);
        let mut stderr = Framed::new(&marker);
        while !(stdout.ended() && stderr.ended()) {
            let Ok(message) = tokio::time::timeout_at(deadline, self.channel.wait()).await else {
                // sshd sends the signal to the session's process group: the
                // shell and the command it runs.
                let _ = self.channel.signal(russh::Sig::TERM).await;
                let _ = self.channel.close().await;
                return Err(ShellError::TimedOut);
            };
            match message {
                Some(ChannelMsg::Data { data }) => stdout.push(&data),
                Some(ChannelMsg::ExtendedData { data, ext: 1 }) => stderr.push(&data),
                Some(ChannelMsg::Eof | ChannelMsg::Close) | None => {
                    return Err(ShellError::Lost(
                        "the connection's shell on the host ended while the command ran"
                            .to_string(),
                    ))
                }
                Some(_) => {}
            }
        }
        Ok(ExecOutput {
            exit_code: stdout.exit_code(),
            stdout: stdout.output,
            stderr: stderr.output,
        })
    }
}

/// Sixteen random hex digits, from the kernel.
fn nonce() -> String {
    use std::io::Read;
    let mut bytes = [0u8; 8];
    let random = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut bytes));
    if random.is_err() {
        // No /dev/urandom: time and pid still make a collision with output unlikely.
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        bytes = (now ^ (u64::from(std::process::id()) << 32)).to_le_bytes();
    }
    let digits: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("herd-{digits}")
}

/// One of the shell's output streams, read until its marker line.
struct Framed {
    marker: Vec<u8>,
    /// What came before the marker, up to the output limit.
    output: Vec<u8>,
    /// The stream's last bytes, where the marker is looked for.
    recent: Vec<u8>,
    /// Bytes of the stream not in `recent`.
    before_recent: usize,
    /// The marker line without its newline, once seen.
    end: Option<String>,
}

impl Framed {
    fn new(marker: &str) -> Framed {
        Framed {
            marker: marker.as_bytes().to_vec(),
            output: Vec::new(),
            recent: Vec::new(),
            before_recent: 0,
            end: None,
        }
    }

    fn ended(&self) -> bool {
        self.end.is_some()
    }

    fn push(&mut self, data: &[u8]) {
        if self.ended() {
            return;
        }
        append(&mut self.output, data);
        self.recent.extend_from_slice(data);
        let Some(at) = find(&self.recent, &self.marker) else {
            // Keep enough to find a marker split between two packets.
            let keep = self.marker.len() + 32;
            if self.recent.len() > 4 * keep {
                let drop = self.recent.len() - keep;
                self.recent.drain(..drop);
                self.before_recent += drop;
            }
            return;
        };
        let Some(newline) = self.recent[at..].iter().position(|&b| b == b'\n') else {
            return;
        };
        self.end = Some(String::from_utf8_lossy(&self.recent[at..at + newline]).into_owned());
        self.output.truncate(self.before_recent + at);
    }

    /// The code printed after the marker on stdout.
    fn exit_code(&self) -> Option<u32> {
        let end = self.end.as_deref()?;
        end[self.marker.len()..].trim().parse().ok()
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(chunks: &[&[u8]]) -> Framed {
        let mut framed = Framed::new("herd-00ff-3:");
        for chunk in chunks {
            framed.push(chunk);
        }
        framed
    }

    #[test]
    fn output_ends_at_the_marker_and_the_code_follows_it() {
        let framed = read(&[b"hello\nwor", b"ld", b"herd-00ff-3: 7\n"]);
        assert!(framed.ended());
        assert_eq!(framed.output, b"hello\nworld");
        assert_eq!(framed.exit_code(), Some(7));
    }

    #[test]
    fn a_marker_split_between_packets_is_found() {
        let framed = read(&[b"out", b"herd-0", b"0ff-3: 0", b"\n"]);
        assert_eq!(framed.output, b"out");
        assert_eq!(framed.exit_code(), Some(0));
    }

    #[test]
    fn an_unfinished_marker_line_is_not_the_end() {
        let framed = read(&[b"herd-00ff-3: 12"]);
        assert!(!framed.ended());
    }

    #[test]
    fn another_commands_marker_is_output() {
        let framed = read(&[b"herd-00ff-31: 0\n", b"herd-00ff-3: 1\n"]);
        assert_eq!(framed.exit_code(), Some(1));
    }

    #[test]
    fn long_output_keeps_the_marker_findable() {
        let big = vec![b'x'; 100_000];
        let framed = read(&[&big, &big, b"herd-00ff-3:\n"]);
        assert!(framed.ended());
        assert_eq!(framed.output.len(), 200_000);
    }
}
