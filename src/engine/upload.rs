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

use std::time::Duration;

use crate::plan::step::wrap;
use crate::template::shell_quote;
use crate::transport::{temp_name, Connection};

/// Writes `data` to `dest` as `user` (root when `None`); the error says why not.
pub async fn upload_as<T: Connection>(
    connection: &T,
    data: &[u8],
    dest: &str,
    mode: u32,
    user: Option<&str>,
    timeout: Duration,
) -> Result<(), String> {
    // Relative: SFTP and the shell both start in the login user's home.
    let staging = format!(".herd-upload-{}", temp_name::token());
    connection
        .upload(data, &staging, 0o600, timeout)
        .await
        .map_err(|e| e.to_string())?;
    let temporary = shell_quote(&temp_name::beside(dest));
    let quoted_dest = shell_quote(dest);
    // The redirection that creates the file fails (and the shell exits) if
    // the name exists; only a file this script created is ever removed.
    let place = format!(
        "umask 077; set -C; exec 3> {temporary} || exit 1\n\
         {{ cat >&3 && exec 3>&- && chmod {mode:o} {temporary} && mv -f -- {temporary} {quoted_dest}; }} \
         || {{ status=$?; rm -f -- {temporary}; exit $status; }}"
    );
    let quoted_staging = shell_quote(&staging);
    let script = format!(
        "{} < {quoted_staging}; status=$?; rm -f -- {quoted_staging}; exit $status",
        wrap(&place, true, user)
    );
    let output = match connection.exec(&script, timeout).await {
        Ok(output) => output,
        Err(error) => {
            // Cut off (a timeout, a lost connection): the script's own
            // clean-up may not have run.
            let clean = format!(
                "{}; rm -f -- {quoted_staging}",
                wrap(&format!("rm -f -- {temporary}"), true, user)
            );
            let _ = connection.exec(&clean, timeout).await;
            return Err(error.to_string());
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
