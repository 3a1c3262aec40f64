//! Shipping an artifact to one host: skip it when the host already has the
//! same content, otherwise stream it and land it atomically.
//!
//! - A file is compared with `sha256sum` and `stat` on the host (content,
//!   mode and owner); it is written beside `dest` and renamed into place, as the login
//!   user over SFTP, or through a staging file under `become`.
//! - A directory (sent as a tar stream built on the fly) or an archive is
//!   staged as one file in the login user's home, then a shell (under sudo
//!   with `become`) unpacks it into a new directory beside `dest`, with an
//!   unpredictable name, writes the marker `.herd-sha256` into it, and swaps
//!   it in: whatever was at `dest` is renamed aside, the new tree renamed to
//!   `dest`, and the old one removed. Nothing half-written is ever at `dest`.
//!
//! The marker's first line names the artifact (its SHA-256 and the `mode`
//! asked for) and the user it was unpacked as; the second is a SHA-256 the host computes over the tree as
//! unpacked: paths, types, modes, link targets, every file's content. The
//! next run skips the transfer only when both still match, so a file
//! changed on the host since brings the whole tree back.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

use crate::artifact::{Artifact, Kind};
use crate::event::Transfer;
use crate::shell::{quote, wrap};
use crate::transport::{temp_name, Connection, TransportError};

/// The marker file in a directory herd unpacked.
pub const MARKER: &str = ".herd-sha256";

/// How long writing a file's record after its upload may take.
const RECORD_LIMIT: Duration = Duration::from_secs(5);

/// How long the clean-up after a cut-off install may take.
const CLEAN_UP_LIMIT: Duration = Duration::from_secs(5);

/// How a step runs on the host: as the login user, or through sudo.
#[derive(Debug, Clone, Copy)]
pub struct As<'a> {
    pub become_: bool,
    pub user: Option<&'a str>,
}

/// Ships `artifact` to `dest`, all of it within `timeout`; `sent` counts
/// the bytes written to the host as they go. Besides the transfer, what
/// the host said on the way (warnings) for the step's stderr.
pub async fn ship<T: Connection>(
    connection: &T,
    artifact: &Artifact,
    dest: &str,
    mode: Option<u32>,
    who: As<'_>,
    timeout: Duration,
    sent: &AtomicU64,
) -> Result<(Transfer, String), String> {
    let mut notes = String::new();
    let deadline = Instant::now() + timeout;
    let timed_out = || {
        TransportError::Timeout {
            what: format!("uploading {dest}"),
            after: timeout,
        }
        .to_string()
    };
    let remaining = || {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            Err(timed_out())
        } else {
            Ok(left)
        }
    };
    let sha256 = artifact.digest().await?;
    let name = marker_name(artifact, &sha256, mode);
    let check = match artifact.kind {
        Kind::File => file_check(dest, &sha256, mode.unwrap_or(0o644)),
        _ => tree_check(dest, &name),
    };
    let checked = connection
        .exec(&wrap(&check, who.become_, who.user), remaining()?)
        .await
        .map_err(|e| match e {
            TransportError::Timeout { .. } => timed_out(),
            other => other.to_string(),
        })?;
    if checked.success() && String::from_utf8_lossy(&checked.stdout).trim() == "unchanged" {
        return Ok((
            Transfer {
                bytes: 0,
                unchanged: true,
                sha256,
            },
            String::new(),
        ));
    }
    let mut source = artifact.open().await?;
    match artifact.kind {
        Kind::File if who.become_ => {
            let mode = mode.unwrap_or(0o644);
            super::upload::upload_as(
                connection,
                &mut source,
                dest,
                mode,
                who.user,
                timeout,
                deadline,
                sent,
            )
            .await?
        }
        Kind::File => connection
            .upload(&mut source, dest, mode.unwrap_or(0o644), remaining()?, sent)
            .await
            .map_err(|e| match e {
                TransportError::Timeout { .. } => timed_out(),
                other => other.to_string(),
            })?,
        Kind::Directory | Kind::Archive { .. } => {
            // Relative: SFTP and the shell both start in the login user's home.
            let staging = format!(".herd-upload-{}", temp_name::token());
            connection
                .upload(&mut source, &staging, 0o600, remaining()?, sent)
                .await
                .map_err(|e| match e {
                    TransportError::Timeout { .. } => timed_out(),
                    other => other.to_string(),
                })?;
            let gzip = matches!(artifact.kind, Kind::Archive { gzip: true });
            let temporary = temp_name::beside(dest);
            let install = tree_install(dest, &temporary, &name, mode, gzip);
            let quoted_staging = quote(&staging);
            // A shell of its own, so its `exit` leaves the staging file to
            // be removed, and stdin is the staging file for all of it.
            let unpack = match who.become_ {
                true => wrap(&install, true, who.user),
                false => format!("/bin/sh -c {}", quote(&install)),
            };
            let script = format!(
                "{unpack} < {quoted_staging}; status=$?; rm -f -- {quoted_staging}; exit $status"
            );
            let placed = match remaining() {
                Ok(left) => connection.exec(&script, left).await,
                Err(_) => Err(TransportError::Timeout {
                    what: String::new(),
                    after: timeout,
                }),
            };
            let output = match placed {
                Ok(output) => output,
                Err(error) => {
                    // Cut off: the script's own clean-up may not have run,
                    // and the new tree may already be in place.
                    let clean = format!(
                        "{}; rm -f -- {quoted_staging}",
                        wrap(&tree_clean_up(dest, &temporary), who.become_, who.user)
                    );
                    let cleaned = connection.exec(&clean, CLEAN_UP_LIMIT.min(timeout)).await;
                    let swapped = cleaned.is_ok_and(|out| {
                        String::from_utf8_lossy(&out.stdout)
                            .lines()
                            .any(|l| l == "swapped")
                    });
                    if swapped {
                        notes = format!(
                            "warning: the time ran out after the new tree was in place at {dest}; \
                             the previous one is being removed in the background\n"
                        );
                    } else {
                        return Err(match error {
                            TransportError::Timeout { .. } => timed_out(),
                            other => other.to_string(),
                        });
                    }
                    crate::transport::ExecOutput::default()
                }
            };
            let stdout = String::from_utf8_lossy(&output.stdout);
            let stderr = String::from_utf8_lossy(&output.stderr);
            if output.success() || stdout.lines().any(|line| line == SWAPPED) {
                notes.push_str(&stderr);
            } else if notes.is_empty() {
                if let Some(refused) = super::host::become_refused(output.exit_code, &stderr) {
                    return Err(refused);
                }
                return Err(format!("unpacking into {dest} failed: {}", stderr.trim()));
            }
        }
    }
    if artifact.kind == Kind::File {
        // Best effort: without the record, the next check reads the file.
        if let Ok(left) = remaining() {
            let record = wrap(&file_record(dest, &sha256), who.become_, who.user);
            let _ = connection.exec(&record, left.min(RECORD_LIMIT)).await;
        }
    }
    Ok((
        Transfer {
            bytes: sent.load(Ordering::Relaxed),
            unchanged: false,
            sha256,
        },
        notes,
    ))
}

/// How often a running upload reports its progress.
const PROGRESS_EVERY: Duration = Duration::from_millis(500);

/// Runs `work`, calling `tell` with the bytes `sent` so far and the time
/// since the start every [`PROGRESS_EVERY`] while the count moves.
pub async fn with_progress<F: std::future::Future>(
    work: F,
    sent: &AtomicU64,
    mut tell: impl FnMut(u64, Duration),
) -> F::Output {
    let started = Instant::now();
    tokio::pin!(work);
    let mut ticks = tokio::time::interval_at(started + PROGRESS_EVERY, PROGRESS_EVERY);
    let mut told = 0;
    loop {
        tokio::select! {
            out = &mut work => return out,
            _ = ticks.tick() => {
                let bytes = sent.load(Ordering::Relaxed);
                if bytes != told {
                    told = bytes;
                    tell(bytes, started.elapsed());
                }
            }
        }
    }
}

/// The marker's first line: what was asked for.
fn marker_name(artifact: &Artifact, sha256: &str, mode: Option<u32>) -> String {
    let kind = match artifact.kind {
        Kind::File => "file",
        Kind::Directory => "directory",
        Kind::Archive { .. } => "archive",
    };
    match mode {
        Some(mode) => format!("{kind} sha256:{sha256} mode:{mode:o}"),
        None => format!("{kind} sha256:{sha256}"),
    }
}

/// Shell text printing, on stdout, a listing of the tree in the current
/// directory (the marker left out) that any change to a path, a type, a
/// mode, a link target or a file's content changes.
fn listing() -> String {
    format!(
        "{{ find . ! -path ./{MARKER} -printf '%y %m %p %l\\n' | LC_ALL=C sort; \
         find . -type f ! -path ./{MARKER} -exec sha256sum -- {{}} + | LC_ALL=C sort; }}"
    )
}

/// Where a host keeps, per uploaded file, what herd knows of it: in the
/// home of the user that owns it (the one the check and the upload run as),
/// one file per destination named by the SHA-256 of its path.
const RECORDS: &str = ".cache/herd/uploads";

/// Shell text printing a file's mode and identity: permission bits,
/// device, inode, size, and its modification and change times (to the
/// nanosecond where the filesystem keeps them). Any write, rename onto it,
/// `chmod` or `touch` changes it; the change time cannot be set back but by
/// the clock.
fn identity(quoted: &str) -> String {
    format!("stat -c '%a %d %i %s %y %z' -- {quoted}")
}

/// Shell text setting `rec` to the record of `dest` (empty without a home).
fn record_of(dest: &str) -> String {
    use sha2::{Digest, Sha256};
    let key: String = Sha256::digest(dest.as_bytes())
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect();
    format!("rec=; [ -n \"${{HOME:-}}\" ] && rec=\"$HOME/{RECORDS}/{key}\"\n")
}

/// Shell text writing `SHA256 $id` to the record `rec`, quietly: a host
/// where it cannot be written only loses the quick check.
///
/// A record is written only once the file's change time lies a clock tick
/// in the past (the rule git applies to its index): a same-size write
/// within the tick of the last change would keep the identity, so the
/// record would vouch for content nobody read. Where the filesystem keeps
/// nanoseconds, herd waits 20 ms and checks the identity again; where it
/// keeps whole seconds, a file changed in the last 2 s gets no record (the
/// next check reads it).
fn write_record(dest: &str, sha256: &str) -> String {
    let quoted = quote(dest);
    format!(
        "[ -n \"$rec\" ] || exit 0\n\
         z=$(stat -c '%Z %z' -- {quoted}) || exit 0\n\
         f=${{z#*.}}; f=${{f%% *}}\n\
         case \"$f\" in\n\
           *[1-9]*) sleep 0.02 2>/dev/null && [ \"$({identity})\" = \"$id\" ] || exit 0 ;;\n\
           *) now=$(date +%s) && [ $((now - ${{z%% *}})) -ge 2 ] || exit 0 ;;\n\
         esac 2>/dev/null\n\
         {{ mkdir -p -- \"${{rec%/*}}\" && chmod 700 -- \"${{rec%/*}}\" \
         && tmp=$(mktemp -- \"$rec.XXXXXX\") && {{ printf '%s %s\\n' {sha256} \"$id\" > \"$tmp\" \
         && mv -f -- \"$tmp\" \"$rec\" || rm -f -- \"$tmp\"; }}; }} >/dev/null 2>&1\n\
         exit 0",
        identity = identity(&quoted),
    )
}

/// Prints `unchanged` when `dest` is a regular file with this SHA-256 and
/// mode, owned by the user the check runs as (the one the upload writes as).
///
/// The content is known without reading it when the host's record says
/// herd wrote (or hashed) this artifact there and the file's identity has
/// not changed since; otherwise `sha256sum` reads it, and a match is
/// recorded for the next run. The identity is taken before hashing, so a
/// file changed while it is read is hashed again next time.
fn file_check(dest: &str, sha256: &str, mode: u32) -> String {
    let quoted = quote(dest);
    format!(
        "[ -f {quoted} ] && [ ! -L {quoted} ] && [ -O {quoted} ] || exit 0\n\
         id=$({identity}) && [ \"${{id%% *}}\" = {mode:o} ] || exit 0\n\
         {record_of}\
         if [ -n \"$rec\" ] && [ -f \"$rec\" ] && [ -O \"$rec\" ] && IFS= read -r known < \"$rec\" \
         && [ \"$known\" = \"{sha256} $id\" ]; then echo unchanged; exit 0; fi\n\
         sum=$(sha256sum < {quoted}) && [ \"${{sum%% *}}\" = {sha256} ] || exit 0\n\
         echo unchanged\n\
         {write}",
        identity = identity(&quoted),
        record_of = record_of(dest),
        write = write_record(dest, sha256),
    )
}

/// Records that `dest`, as it is now, holds the artifact `sha256`: run
/// right after the upload put it there, so the next run's check needs no
/// `sha256sum`.
fn file_record(dest: &str, sha256: &str) -> String {
    format!(
        "id=$({identity}) || exit 0\n{record_of}{write}",
        identity = identity(&quote(dest)),
        record_of = record_of(dest),
        write = write_record(dest, sha256),
    )
}

/// Prints `unchanged` when `dest` is a directory whose marker names this
/// artifact and the user the check runs as (the one an install unpacks
/// as), and whose content still has the digest recorded next to it.
fn tree_check(dest: &str, name: &str) -> String {
    let marker = quote(&format!("{dest}/{MARKER}"));
    let dest = quote(dest);
    format!(
        "[ -d {dest} ] && [ ! -L {dest} ] && [ -f {marker} ] || exit 0\n\
         {{ IFS= read -r first; IFS= read -r second; }} < {marker} || exit 0\n\
         [ \"$first\" = {name}\" user:$(id -un)\" ] || exit 0\n\
         sum=$(cd {dest} && {listing} | sha256sum) && [ \"${{sum%% *}}\" = \"$second\" ] && echo unchanged",
        name = quote(name),
        listing = listing(),
    )
}

/// The line an install prints once the new tree is at `dest`.
const SWAPPED: &str = "herd: swapped";

/// Shell text: `dest`, `tmp`, `old` set, and `gone PATH`, which removes a
/// tree even where it has read-only directories (a symlink is removed as
/// a name, never followed).
fn prelude(dest: &str, temporary: &str) -> String {
    format!(
        "dest={dest}; tmp={tmp}; old={old}\n\
         gone() {{ if [ -d \"$1\" ] && [ ! -L \"$1\" ]; then chmod -R u+w -- \"$1\" 2>/dev/null; fi; rm -rf -- \"$1\"; }}\n\
         there() {{ [ -e \"$1\" ] || [ -L \"$1\" ]; }}\n",
        dest = quote(dest),
        tmp = quote(temporary),
        old = quote(&format!("{temporary}-old")),
    )
}

/// Unpacks the tar stream on stdin into `temporary` (created here, so a
/// name that exists is never used), writes the marker, and swaps the tree
/// in at `dest`. On failure nothing is left behind and `dest` is as it was.
///
/// The archive is not trusted: a `.herd-sha256` in it is not extracted
/// (and the marker is written as a new file renamed into place, so a
/// symlink by that name is replaced, never written through), device
/// nodes, fifos and sockets are refused, and setuid/setgid bits are
/// cleared. The marker's first line ends with the user the tree was
/// unpacked as, its owner. Once the swap is done the step has succeeded:
/// a previous tree that cannot be removed is a warning on stderr.
fn tree_install(dest: &str, temporary: &str, name: &str, mode: Option<u32>, gzip: bool) -> String {
    let chmod = mode.map_or(String::new(), |m| format!("chmod {m:o} \"$tmp\" && "));
    let z = if gzip { "-z " } else { "" };
    format!(
        "umask 022\n\
         {prelude}\
         mkdir -- \"$tmp\" || exit 1\n\
         fail() {{ gone \"$tmp\"; exit 1; }}\n\
         (CDPATH= cd -- \"$tmp\" && tar -x {z}-p --no-same-owner --anchored --exclude=./{MARKER} --exclude={MARKER} --no-anchored -f -) || fail\n\
         special=$(find \"$tmp\" \\( -type b -o -type c -o -type p -o -type s \\) -print | head -n 1)\n\
         if [ -n \"$special\" ]; then echo \"refused: ${{special#\"$tmp\"/}} is a device, a fifo or a socket\" >&2; fail; fi\n\
         find \"$tmp\" ! -type l -perm /6000 -exec chmod ug-s -- {{}} + || fail\n\
         {chmod}sum=$(cd \"$tmp\" && {listing} | sha256sum) || fail\n\
         rm -rf -- \"$tmp/{MARKER}\" && mark=$(mktemp -- \"$tmp/.herd-mark.XXXXXX\") || fail\n\
         printf '%s user:%s\\n%s\\n' {name} \"$(id -un)\" \"${{sum%% *}}\" > \"$mark\" && chmod 644 -- \"$mark\" \\\n\
         \x20 && mv -f -T -- \"$mark\" \"$tmp/{MARKER}\" || fail\n\
         if there \"$dest\"; then mv -T -- \"$dest\" \"$old\" || fail; fi\n\
         if ! mv -T -- \"$tmp\" \"$dest\"; then\n\
         \x20 if there \"$old\"; then mv -T -- \"$old\" \"$dest\"; fi\n\
         \x20 fail\n\
         fi\n\
         echo '{SWAPPED}'\n\
         if there \"$old\"; then gone \"$old\" 2>/dev/null; fi\n\
         if there \"$old\"; then echo \"warning: the previous tree could not be removed: $old\" >&2; fi\n\
         exit 0",
        prelude = prelude(dest, temporary),
        name = quote(name),
        listing = listing(),
    )
}

/// After an install was cut off: if the new tree never reached `dest`,
/// the old one is put back where it was missing and the new one removed;
/// if it did (`swapped` is printed), the old tree is removed in the
/// background, detached, and the step counts as done.
fn tree_clean_up(dest: &str, temporary: &str) -> String {
    format!(
        "{prelude}\
         if there \"$tmp\"; then\n\
         \x20 if ! there \"$dest\" && there \"$old\"; then mv -T -- \"$old\" \"$dest\"; fi\n\
         \x20 gone \"$tmp\"\n\
         elif there \"$old\"; then\n\
         \x20 if there \"$dest\"; then\n\
         \x20   echo swapped\n\
         \x20   ( trap '' HUP; gone \"$old\" ) </dev/null >/dev/null 2>&1 &\n\
         \x20 else mv -T -- \"$old\" \"$dest\"; fi\n\
         fi",
        prelude = prelude(dest, temporary),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `script` with /bin/sh in `dir`, `stdin` from a file: exit code, stdout, stderr.
    fn sh(
        dir: &std::path::Path,
        script: &str,
        stdin: Option<&std::path::Path>,
    ) -> (i32, String, String) {
        let mut command = std::process::Command::new("/bin/sh");
        command.arg("-c").arg(script).current_dir(dir);
        if let Some(path) = stdin {
            command.stdin(std::fs::File::open(path).unwrap());
        }
        let output = command.output().unwrap();
        (
            output.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    }

    fn tar_of(dir: &std::path::Path, out: &std::path::Path) {
        let status = std::process::Command::new("tar")
            .arg("-cf")
            .arg(out)
            .arg("-C")
            .arg(dir)
            .arg(".")
            .status()
            .unwrap();
        assert!(status.success());
    }

    #[test]
    fn an_install_swaps_the_tree_whole_and_the_check_sees_tampering() {
        let work = tempfile::tempdir().unwrap();
        let w = work.path();
        for (tree, content) in [("v1", "one"), ("v2", "two")] {
            std::fs::create_dir(w.join(tree)).unwrap();
            std::fs::write(w.join(tree).join("app.txt"), content).unwrap();
            tar_of(&w.join(tree), &w.join(format!("{tree}.tar")));
        }
        std::fs::write(w.join("v1/only-in-v1"), "x").unwrap();
        tar_of(&w.join("v1"), &w.join("v1.tar"));
        let dest = w.join("dest").display().to_string();

        let (code, _, stderr) = sh(w, &tree_check(&dest, "a"), None);
        assert_eq!((code, stderr.as_str()), (0, ""), "absent: nothing printed");
        for (tar, name) in [("v1.tar", "a"), ("v2.tar", "b")] {
            let install = tree_install(&dest, &temp_name::beside(&dest), name, Some(0o750), false);
            let (code, _, stderr) = sh(w, &install, Some(&w.join(tar)));
            assert_eq!((code, stderr.as_str()), (0, ""), "{tar}");
            let (_, stdout, _) = sh(w, &tree_check(&dest, name), None);
            assert_eq!(stdout, "unchanged\n", "{tar}");
        }
        // Replaced whole: v1's extra file is gone, and nothing is left beside.
        assert_eq!(
            std::fs::read_to_string(w.join("dest/app.txt")).unwrap(),
            "two"
        );
        assert!(!w.join("dest/only-in-v1").exists());
        let mut names: Vec<_> = std::fs::read_dir(w)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, ["dest", "v1", "v1.tar", "v2", "v2.tar"]);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(w.join("dest"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o750);

        // Another artifact name, or a file changed on the host: not unchanged.
        let (_, stdout, _) = sh(w, &tree_check(&dest, "a"), None);
        assert_eq!(stdout, "");
        std::fs::write(w.join("dest/app.txt"), "tampered").unwrap();
        let (_, stdout, _) = sh(w, &tree_check(&dest, "b"), None);
        assert_eq!(stdout, "");
    }

    #[test]
    fn a_broken_archive_leaves_dest_as_it_was() {
        let work = tempfile::tempdir().unwrap();
        let w = work.path();
        std::fs::create_dir(w.join("dest")).unwrap();
        std::fs::write(w.join("dest/keep"), "kept").unwrap();
        std::fs::write(w.join("junk.tar"), "not a tar").unwrap();
        let dest = w.join("dest").display().to_string();
        let install = tree_install(&dest, &temp_name::beside(&dest), "a", None, false);
        let (code, _, _) = sh(w, &install, Some(&w.join("junk.tar")));
        assert_eq!(code, 1);
        assert_eq!(
            std::fs::read_to_string(w.join("dest/keep")).unwrap(),
            "kept"
        );
        assert_eq!(
            std::fs::read_dir(w).unwrap().count(),
            2,
            "no temporary left"
        );
    }

    #[test]
    fn a_marker_symlink_in_the_archive_is_not_written_through() {
        let work = tempfile::tempdir().unwrap();
        let w = work.path();
        let victim = w.join("victim");
        std::fs::write(&victim, "precious").unwrap();
        std::fs::create_dir(w.join("tree")).unwrap();
        std::fs::write(w.join("tree/app.txt"), "app").unwrap();
        std::os::unix::fs::symlink(&victim, w.join("tree").join(MARKER)).unwrap();
        tar_of(&w.join("tree"), &w.join("evil.tar"));
        let dest = w.join("dest").display().to_string();

        let install = tree_install(&dest, &temp_name::beside(&dest), "a", None, false);
        let (code, stdout, stderr) = sh(w, &install, Some(&w.join("evil.tar")));

        assert_eq!(
            (code, stdout.as_str(), stderr.as_str()),
            (0, "herd: swapped\n", "")
        );
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
        let marker = std::fs::symlink_metadata(w.join("dest").join(MARKER)).unwrap();
        assert!(marker.file_type().is_file(), "{marker:?}");
        assert_eq!(sh(w, &tree_check(&dest, "a"), None).1, "unchanged\n");
    }

    #[test]
    fn special_files_are_refused_and_setuid_bits_cleared() {
        use std::os::unix::fs::PermissionsExt;
        let work = tempfile::tempdir().unwrap();
        let w = work.path();
        std::fs::create_dir(w.join("tree")).unwrap();
        std::fs::write(w.join("tree/tool"), "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(w.join("tree/tool"), std::fs::Permissions::from_mode(0o6755))
            .unwrap();
        tar_of(&w.join("tree"), &w.join("suid.tar"));
        let status = std::process::Command::new("mkfifo")
            .arg(w.join("tree/pipe"))
            .status()
            .unwrap();
        assert!(status.success());
        tar_of(&w.join("tree"), &w.join("fifo.tar"));
        let dest = w.join("dest").display().to_string();
        let install = || tree_install(&dest, &temp_name::beside(&dest), "a", None, false);

        let (code, _, stderr) = sh(w, &install(), Some(&w.join("fifo.tar")));
        assert_eq!(
            (code, stderr.as_str()),
            (1, "refused: pipe is a device, a fifo or a socket\n")
        );
        assert!(!w.join("dest").exists());

        let (code, _, stderr) = sh(w, &install(), Some(&w.join("suid.tar")));
        assert_eq!((code, stderr.as_str()), (0, ""));
        let mode = std::fs::metadata(w.join("dest/tool"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o7777, 0o755);
        let mut names: Vec<_> = std::fs::read_dir(w)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(
            names,
            ["dest", "fifo.tar", "suid.tar", "tree"],
            "nothing left beside"
        );
    }

    #[test]
    fn a_clean_up_puts_the_old_tree_back_or_reports_the_swap() {
        let work = tempfile::tempdir().unwrap();
        let w = work.path();
        let dest = w.join("dest").display().to_string();
        let temporary = temp_name::beside(&dest);
        let old = format!("{temporary}-old");
        let tree = |path: &str, content: &str| {
            std::fs::create_dir_all(path).unwrap();
            std::fs::write(format!("{path}/app.txt"), content).unwrap();
        };
        let listed = || {
            let mut names: Vec<_> = std::fs::read_dir(w)
                .unwrap()
                .map(|e| e.unwrap().file_name().into_string().unwrap())
                .collect();
            names.sort();
            names
        };

        // Cut off between the two renames: dest is missing, both trees beside.
        tree(&old, "old");
        tree(&temporary, "new");
        let (code, stdout, _) = sh(w, &tree_clean_up(&dest, &temporary), None);
        assert_eq!((code, stdout.as_str()), (0, ""));
        assert_eq!(listed(), ["dest"]);
        assert_eq!(
            std::fs::read_to_string(w.join("dest/app.txt")).unwrap(),
            "old"
        );

        // Cut off while the old tree was being removed: the swap is done.
        tree(&old, "old");
        std::fs::create_dir(format!("{old}/locked")).unwrap();
        let (code, stdout, _) = sh(w, &tree_clean_up(&dest, &temporary), None);
        assert_eq!((code, stdout.as_str()), (0, "swapped\n"));
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while listed().len() > 1 && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(listed(), ["dest"]);

        // Cut off during the unpack: the new tree goes, dest stays.
        tree(&temporary, "new");
        let (code, stdout, _) = sh(w, &tree_clean_up(&dest, &temporary), None);
        assert_eq!((code, stdout.as_str()), (0, ""));
        assert_eq!(listed(), ["dest"]);
        assert_eq!(
            std::fs::read_to_string(w.join("dest/app.txt")).unwrap(),
            "old"
        );
    }

    #[tokio::test]
    async fn a_host_that_has_the_content_gets_nothing_sent() {
        use crate::transport::fake::{FakeConnector, Rule};
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("app.txt"), "v1").unwrap();
        let artifact = Artifact::upload(dir.path()).unwrap();
        let fake =
            FakeConnector::default().rule("web01", Rule::new(MARKER, 0).stdout("unchanged\n"));
        let connection = fake.connection_to("web01").await;
        let sent = AtomicU64::new(0);
        let who = As {
            become_: true,
            user: Some("app"),
        };

        let (transfer, _) = ship(
            &connection,
            &artifact,
            "/srv/site",
            None,
            who,
            Duration::from_secs(5),
            &sent,
        )
        .await
        .unwrap();

        assert!(transfer.unchanged && transfer.bytes == 0, "{transfer:?}");
        assert_eq!(transfer.sha256, artifact.digest().await.unwrap());
        let commands = fake.commands("web01");
        assert_eq!(commands.len(), 1, "only the check ran: {commands:?}");
        assert!(
            commands[0].starts_with("sudo -n -H -u app -- /bin/sh -c "),
            "{commands:?}"
        );
    }

    #[tokio::test]
    async fn a_tree_is_staged_then_unpacked_by_the_user_become() {
        use crate::transport::fake::FakeConnector;
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("app.txt"), "v1").unwrap();
        let artifact = Artifact::upload(dir.path()).unwrap();
        let fake = FakeConnector::default();
        let connection = fake.connection_to("web01").await;
        let sent = AtomicU64::new(0);
        let who = As {
            become_: true,
            user: Some("app"),
        };

        let (transfer, _) = ship(
            &connection,
            &artifact,
            "/srv/site",
            Some(0o750),
            who,
            Duration::from_secs(5),
            &sent,
        )
        .await
        .unwrap();

        assert!(!transfer.unchanged && transfer.bytes > 0, "{transfer:?}");
        assert_eq!(transfer.bytes, sent.load(Ordering::Relaxed));
        let commands = fake.commands("web01");
        assert_eq!(commands.len(), 3, "{commands:?}");
        assert!(
            commands[1].starts_with("upload .herd-upload-"),
            "{commands:?}"
        );
        let staging = &commands[1]["upload ".len()..];
        assert!(
            commands[2].starts_with("sudo -n -H -u app -- /bin/sh -c ")
                && commands[2].ends_with(&format!(
                    "< {staging}; status=$?; rm -f -- {staging}; exit $status"
                )),
            "{commands:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_timeout_after_the_swap_is_a_success_with_a_warning() {
        use crate::transport::fake::{FakeConnector, Rule};
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("app.txt"), "v1").unwrap();
        let artifact = Artifact::upload(dir.path()).unwrap();
        let who = As {
            become_: false,
            user: None,
        };
        for (clean_up_says, ok) in [("swapped\n", true), ("", false)] {
            let fake = FakeConnector::default()
                .rule(
                    "web01",
                    Rule::new("tar -x", 0).delay(Duration::from_secs(60)),
                )
                .rule("web01", Rule::new("echo swapped", 0).stdout(clean_up_says));
            let connection = fake.connection_to("web01").await;
            let sent = AtomicU64::new(0);

            let shipped = ship(
                &connection,
                &artifact,
                "/srv/site",
                None,
                who,
                Duration::from_secs(5),
                &sent,
            )
            .await;

            match shipped {
                Ok((transfer, notes)) => {
                    assert!(ok && !transfer.unchanged, "{transfer:?}");
                    assert_eq!(
                        notes,
                        "warning: the time ran out after the new tree was in place at /srv/site; \
                         the previous one is being removed in the background\n"
                    );
                }
                Err(error) => {
                    assert!(!ok, "{error}");
                    assert_eq!(error, "uploading /srv/site timed out after 5s");
                }
            }
            let commands = fake.commands("web01");
            assert!(
                commands.last().unwrap().contains("echo swapped"),
                "{commands:?}"
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn progress_is_told_while_the_count_moves_and_not_after() {
        let sent = AtomicU64::new(0);
        let work = async {
            for _ in 0..3 {
                sent.fetch_add(1000, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(600)).await;
            }
            // Stalled: no more reports while nothing moves.
            tokio::time::sleep(Duration::from_secs(3)).await;
            "done"
        };
        let mut told = Vec::new();
        let out = with_progress(work, &sent, |bytes, elapsed| {
            told.push((bytes, elapsed.as_millis()))
        })
        .await;
        assert_eq!(out, "done");
        assert_eq!(told, [(1000, 500), (2000, 1000), (3000, 1500)]);
    }

    #[test]
    fn a_file_check_compares_content_and_mode() {
        use std::os::unix::fs::PermissionsExt;
        let work = tempfile::tempdir().unwrap();
        let path = work.path().join("f");
        std::fs::write(&path, "abc").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        let dest = path.display().to_string();
        let abc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        let said = |sha: &str, mode: u32| sh_at_home(work.path(), &file_check(&dest, sha, mode));
        assert_eq!(said(abc, 0o640), "unchanged\n");
        assert_eq!(said(abc, 0o644), "");
        assert_eq!(said(&"0".repeat(64), 0o640), "");
    }

    /// Runs `script` with /bin/sh and HOME=`home`: its stdout.
    fn sh_at_home(home: &std::path::Path, script: &str) -> String {
        let output = std::process::Command::new("/bin/sh")
            .arg("-c")
            .arg(script)
            .env("HOME", home)
            .output()
            .unwrap();
        assert!(output.stderr.is_empty(), "{output:?}");
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    #[test]
    fn a_hostile_destination_name_is_only_ever_a_name_in_the_check_and_the_record() {
        let work = tempfile::tempdir().unwrap();
        let home = work.path().join("home");
        std::fs::create_dir(&home).unwrap();
        // Run as commands, these would make HOME/PWNED (a name holds no `/`).
        let pwned = home.join("PWNED");
        let name = "it's $(cd; touch PWNED) `cd; touch PWNED` \"$HOME\" a\nfile";
        let path = work.path().join(name);
        std::fs::write(&path, "abc").unwrap();
        let dest = path.display().to_string();
        let abc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

        // Hashed and recorded, then known from the record; after an upload's
        // record, the same.
        let check = || sh_at_home(&home, &file_check(&dest, abc, 0o644));
        assert_eq!(check(), "unchanged\n");
        assert_eq!(check(), "unchanged\n");
        assert_eq!(sh_at_home(&home, &file_record(&dest, abc)), "");
        assert_eq!(check(), "unchanged\n");
        assert_eq!(std::fs::read_dir(home.join(RECORDS)).unwrap().count(), 1);
        assert!(!pwned.exists(), "the name ran as a command");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "abc");
    }

    #[test]
    fn a_recorded_file_is_known_unchanged_until_its_identity_changes() {
        let work = tempfile::tempdir().unwrap();
        let home = work.path().join("home");
        std::fs::create_dir(&home).unwrap();
        let path = work.path().join("f");
        std::fs::write(&path, "abc").unwrap();
        let dest = path.display().to_string();
        let abc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        let check = |sha: &str| sh_at_home(&home, &file_check(&dest, sha, 0o644));

        // Hashed, found equal, and recorded: one record, for this artifact.
        assert_eq!(check(abc), "unchanged\n");
        let records: Vec<_> = std::fs::read_dir(home.join(RECORDS))
            .unwrap()
            .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
            .collect();
        assert_eq!(records.len(), 1, "{records:?}");
        assert!(records[0].starts_with(&format!("{abc} ")), "{records:?}");

        // The record is believed without reading the file: one that says
        // another artifact makes the check say so while nothing changed.
        let other = "0".repeat(64);
        assert_eq!(sh_at_home(&home, &file_record(&dest, &other)), "");
        assert_eq!(check(&other), "unchanged\n");
        // A record another account owns is not believed (as root, which CI
        // runs as, the test can hand it over).
        if unsafe { libc::geteuid() } == 0 {
            let record = std::fs::read_dir(home.join(RECORDS))
                .unwrap()
                .next()
                .unwrap()
                .unwrap()
                .path();
            std::os::unix::fs::chown(&record, Some(65534), Some(65534)).unwrap();
            assert_eq!(check(&other), "", "a foreign record was believed");
            std::os::unix::fs::chown(&record, Some(0), Some(0)).unwrap();
        }
        assert_eq!(check(abc), "unchanged\n", "hashed again, and recorded");

        // Same size, modification time put back: the change time still
        // differs, so the file is read again and found different.
        assert_eq!(sh_at_home(&home, &file_record(&dest, abc)), "");
        let modified = std::fs::metadata(&path).unwrap().modified().unwrap();
        std::thread::sleep(Duration::from_millis(20));
        std::fs::write(&path, "abd").unwrap();
        std::fs::File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_modified(modified)
            .unwrap();
        assert_eq!(check(abc), "");
    }
}
