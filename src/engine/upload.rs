//! Uploads under `become`: SFTP writes only as the login user, so the bytes
//! go to a private staging file in the login user's home first, then a shell
//! of the login user pipes them to `sudo -n -u USER`, which writes them next
//! to the destination and renames them into place. The file ends up owned by
//! that user, with the step's mode, and the staging file is removed.
//!
//! Both intermediate files have unpredictable names and are created
//! exclusively (the user become creates its copy with `set -C` under
//! `umask 077`), so a symlink planted in either directory is never written
//! through, and neither is readable by others while it is being written.
//! The move replaces the destination as a name (a symlink there is replaced,
//! not followed) and refuses a destination that is a directory.

use std::sync::atomic::AtomicU64;
use std::time::Duration;

use tokio::io::AsyncRead;
use tokio::time::Instant;

use crate::shell::quote as shell_quote;
use crate::shell::wrap;
use crate::transport::{temp_name, Connection, TransportError};

/// How long the clean-up after a failed upload may take: it runs after the
/// step's deadline has passed, on a host that may be the reason it did.
const CLEAN_UP_LIMIT: Duration = Duration::from_secs(5);

/// Writes what `source` yields to `dest` as `user` (root when `None`),
/// counting the bytes sent in `sent`; the error says why not. The staging
/// upload and the move into place share one `deadline`, the end of the
/// step's `timeout`.
#[allow(clippy::too_many_arguments)]
pub async fn upload_as<T: Connection>(
    connection: &T,
    source: &mut (dyn AsyncRead + Unpin + Send),
    dest: &str,
    mode: u32,
    user: Option<&str>,
    timeout: Duration,
    deadline: Instant,
    sent: &AtomicU64,
) -> Result<(), String> {
    let timed_out = || {
        TransportError::Timeout {
            what: format!("uploading {dest}"),
            after: timeout,
        }
        .to_string()
    };
    // Relative: SFTP and the shell both start in the login user's home.
    let staging = format!(".herd-upload-{}", temp_name::token());
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return Err(timed_out());
    }
    match connection.upload(source, &staging, 0o600, left, sent).await {
        Ok(()) => {}
        Err(TransportError::Timeout { .. }) => return Err(timed_out()),
        Err(error) => return Err(error.to_string()),
    }
    let temporary_name = temp_name::beside(dest);
    let temporary = shell_quote(&temporary_name);
    // The redirection that creates the file fails (and the shell exits) if
    // the name exists; only a file this script created is ever removed.
    let place = format!(
        "umask 077; set -C; {refuse} || exit 1; exec 3> {temporary} || exit 1\n\
         {{ cat >&3 && exec 3>&- && chmod {mode:o} {temporary} && {move_}; }} \
         || {{ status=$?; rm -f -- {temporary}; exit $status; }}",
        refuse = temp_name::refuse_directory(dest),
        move_ = temp_name::move_into_place(&temporary_name, dest),
    );
    let quoted_staging = shell_quote(&staging);
    let script = format!(
        "{} < {quoted_staging}; status=$?; rm -f -- {quoted_staging}; exit $status",
        wrap(&place, true, user)
    );
    let clean = format!(
        "{}; rm -f -- {quoted_staging}",
        wrap(&format!("rm -f -- {temporary}"), true, user)
    );
    let remaining = deadline.saturating_duration_since(Instant::now());
    let placed = if remaining.is_zero() {
        Err(TransportError::Timeout {
            what: String::new(),
            after: timeout,
        })
    } else {
        connection.exec(&script, remaining).await
    };
    let output = match placed {
        Ok(output) => output,
        Err(error) => {
            // Cut off (a timeout, a lost connection): the script's own
            // clean-up may not have run.
            let _ = connection.exec(&clean, CLEAN_UP_LIMIT.min(timeout)).await;
            return Err(match error {
                TransportError::Timeout { .. } => timed_out(),
                other => other.to_string(),
            });
        }
    };
    if output.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    if let Some(refused) = super::host::become_refused(output.exit_code, &stderr) {
        return Err(refused);
    }
    Err(format!(
        "upload to {dest} as {} failed: {}",
        user.unwrap_or("root"),
        stderr.trim()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::fake::{FakeConnector, Rule};

    #[tokio::test(start_paused = true)]
    async fn the_staging_upload_and_the_move_share_the_step_timeout() {
        // Each part alone fits in the timeout; both together do not.
        let fake = FakeConnector::default()
            .rule(
                "web01",
                Rule::new("upload .herd-upload-", 0).delay(Duration::from_secs(3)),
            )
            .rule(
                "web01",
                Rule::new("set -C", 0).delay(Duration::from_secs(3)),
            );
        let connection = fake.connection_to("web01").await;
        let started = Instant::now();

        let result = upload_as(
            &connection,
            &mut &b"secret"[..],
            "/srv/app/settings.ini",
            0o600,
            Some("app"),
            Duration::from_secs(4),
            started + Duration::from_secs(4),
            &AtomicU64::new(0),
        )
        .await;

        assert_eq!(
            result,
            Err("uploading /srv/app/settings.ini timed out after 4s".to_string())
        );
        assert_eq!(started.elapsed(), Duration::from_secs(4));
        let commands = fake.commands("web01");
        assert_eq!(commands.len(), 3, "{commands:?}");
        assert!(
            commands[2].contains("rm -f -- .herd-upload-"),
            "{commands:?}"
        );
    }

    #[tokio::test]
    async fn under_become_the_move_is_the_one_that_refuses_a_directory() {
        let fake = FakeConnector::default();
        let connection = fake.connection_to("web01").await;

        upload_as(
            &connection,
            &mut &b"x"[..],
            "/srv/app/x.ini",
            0o640,
            None,
            Duration::from_secs(5),
            Instant::now() + Duration::from_secs(5),
            &AtomicU64::new(0),
        )
        .await
        .expect("the fake accepts everything");

        let commands = fake.commands("web01");
        let place = &commands[1];
        assert!(
            place.contains("is a directory") && place.contains("mv -f -T -- "),
            "{place}"
        );
    }
}
