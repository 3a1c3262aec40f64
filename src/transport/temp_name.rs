//! Names for files an upload writes before moving them into place.
//!
//! A predictable name (`DEST.tmp`) lets anyone who can write to the
//! destination's directory plant a symlink there first and have herd write
//! through it, so the name carries 64 random bits. The file is still created
//! exclusively (`O_EXCL`): a name that exists is never opened.

use std::hash::{BuildHasher, Hasher};
use std::io::Read;

use crate::shell::quote as shell_quote;

/// `path` with `.herd-upload-` and 16 random hex digits appended: a sibling
/// of `path`, on the same filesystem, so a rename puts it in place.
pub fn beside(path: &str) -> String {
    format!("{path}.herd-upload-{}", token())
}

/// 16 random hex digits.
pub fn token() -> String {
    format!("{:016x}", random_u64())
}

/// Shell text that fails, saying "DEST is a directory" on stderr, when
/// `dest` is a directory (not a symlink to one): an upload never lands inside
/// a directory.
pub fn refuse_directory(dest: &str) -> String {
    let quoted = shell_quote(dest);
    format!(
        "{{ [ ! -d {quoted} ] || [ -L {quoted} ] || {{ printf '%s is a directory\\n' {quoted} >&2; false; }}; }}"
    )
}

/// Shell text that renames `temporary` to `dest`, which it replaces as a
/// name: a symlink there is replaced itself, never followed, and a
/// directory is refused rather than written into (`mv -T`, as GNU coreutils
/// and BusyBox have it).
pub fn move_into_place(temporary: &str, dest: &str) -> String {
    format!(
        "{} && mv -f -T -- {} {}",
        refuse_directory(dest),
        shell_quote(temporary),
        shell_quote(dest)
    )
}

fn random_u64() -> u64 {
    let mut bytes = [0u8; 8];
    let read = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut bytes));
    if read.is_ok() {
        return u64::from_le_bytes(bytes);
    }
    // The standard library seeds its hash keys from the operating system's
    // random source; a fresh hasher over nothing yields an unguessable value.
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_sit_beside_the_path_and_differ_every_time() {
        let a = beside("/srv/app/settings.py");
        let b = beside("/srv/app/settings.py");
        assert!(a.starts_with("/srv/app/settings.py.herd-upload-"), "{a}");
        assert_eq!(a.len(), "/srv/app/settings.py.herd-upload-".len() + 16);
        assert_ne!(a, b);
    }

    /// Runs `script` with /bin/sh: its exit code and stderr.
    fn sh(script: &str) -> (Option<i32>, String) {
        let output = std::process::Command::new("/bin/sh")
            .arg("-c")
            .arg(script)
            .output()
            .expect("/bin/sh runs");
        (
            output.status.code(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    }

    #[test]
    fn the_move_refuses_a_directory_and_replaces_a_symlink_itself() {
        let dir = tempfile::tempdir().unwrap();
        let path = |name: &str| dir.path().join(name).display().to_string();
        std::fs::create_dir(path("conf.d")).unwrap();
        std::fs::create_dir(path("real.d")).unwrap();
        std::fs::write(path("outside"), "untouched").unwrap();
        std::os::unix::fs::symlink(path("real.d"), path("to-dir")).unwrap();
        std::os::unix::fs::symlink(path("outside"), path("to-file")).unwrap();
        for name in ["new", "conf.d", "to-dir", "to-file"] {
            std::fs::write(path(&format!("{name}.tmp")), name).unwrap();
        }

        let (code, stderr) = sh(&move_into_place(&path("conf.d.tmp"), &path("conf.d")));
        assert_eq!(code, Some(1));
        assert_eq!(stderr, format!("{} is a directory\n", path("conf.d")));
        assert_eq!(std::fs::read_dir(path("conf.d")).unwrap().count(), 0);

        for name in ["new", "to-dir", "to-file"] {
            let (code, stderr) = sh(&move_into_place(&path(&format!("{name}.tmp")), &path(name)));
            assert_eq!((code, stderr.as_str()), (Some(0), ""), "{name}");
            let meta = std::fs::symlink_metadata(path(name)).unwrap();
            assert!(meta.file_type().is_file(), "{name}");
            assert_eq!(std::fs::read_to_string(path(name)).unwrap(), name);
        }
        assert_eq!(std::fs::read_dir(path("real.d")).unwrap().count(), 0);
        assert_eq!(
            std::fs::read_to_string(path("outside")).unwrap(),
            "untouched"
        );
    }
}
