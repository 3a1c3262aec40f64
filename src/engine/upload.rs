//! Uploads under `become`: SFTP writes only as the login user, so the bytes
//! go to a private staging file in the login user's home first, then a shell
//! of the login user pipes them to `sudo -n -u USER`, which writes them next
//! to the destination and renames them into place. The file ends up owned by
//! that user, with the step's mode, and the staging file is removed.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::plan::step::wrap;
use crate::template::shell_quote;
use crate::transport::Connection;

/// Tells staging files of one controller apart.
static STAGED: AtomicU64 = AtomicU64::new(0);

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
    let staging = format!(
        ".herd-upload-{}-{}",
        std::process::id(),
        STAGED.fetch_add(1, Ordering::Relaxed)
    );
    connection
        .upload(data, &staging, 0o600, timeout)
        .await
        .map_err(|e| e.to_string())?;
    let quoted = shell_quote(dest);
    let place = format!(
        "t={quoted}.herd-upload; cat > \"$t\" && chmod {mode:o} \"$t\" && mv -f \"$t\" {quoted}"
    );
    let script = format!(
        "{} < {staging}; status=$?; rm -f {staging}; exit $status",
        wrap(&place, true, user)
    );
    let output = connection
        .exec(&script, timeout)
        .await
        .map_err(|e| e.to_string())?;
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
