//! SHA-256 digests of artifacts, read in bounded chunks.
//!
//! A directory's digest is the SHA-256 of a canonical listing: one record
//! per entry, the root included, in byte order of the relative path, each
//! `TYPE MODE PATH` then a NUL and the symlink's target or the file's own
//! SHA-256. Two trees with the same paths, types, permission bits, link
//! targets and file contents have the same digest, whatever the order the
//! filesystem lists them in and whatever their timestamps or owners.

use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use sha2::{Digest, Sha256};

const CHUNK: usize = 64 * 1024;

/// The SHA-256 (hex) of a file's bytes.
pub fn file_digest(path: &Path) -> std::io::Result<String> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; CHUNK];
    loop {
        let read = file.read(&mut buffer)?;
        if read == 0 {
            break;
        }
        hasher.update(&buffer[..read]);
    }
    Ok(hex(&hasher.finalize()))
}

/// The SHA-256 (hex) of a directory's canonical listing (see the module).
/// A `root` that is a symlink is resolved first: the digest covers the
/// directory it leads to, as the tar stream sent does.
pub fn directory_digest(root: &Path) -> std::io::Result<String> {
    let root = std::fs::canonicalize(root)?;
    let mut listing = Sha256::new();
    list(&root, Path::new("."), &mut listing)?;
    Ok(hex(&listing.finalize()))
}

fn list(path: &Path, relative: &Path, listing: &mut Sha256) -> std::io::Result<()> {
    let meta = std::fs::symlink_metadata(path)?;
    let kind = meta.file_type();
    let mode = meta.permissions().mode() & 0o7777;
    let letter = if kind.is_symlink() {
        'l'
    } else if kind.is_dir() {
        'd'
    } else if kind.is_file() {
        'f'
    } else {
        'o'
    };
    listing.update(format!("{letter} {mode:o} ").as_bytes());
    listing.update(relative.as_os_str().as_bytes());
    listing.update(b"\0");
    if kind.is_symlink() {
        listing.update(std::fs::read_link(path)?.as_os_str().as_bytes());
    } else if kind.is_file() {
        listing.update(file_digest(path)?.as_bytes());
    }
    listing.update(b"\n");
    if kind.is_dir() {
        let mut names = std::fs::read_dir(path)?
            .map(|entry| entry.map(|e| e.file_name()))
            .collect::<Result<Vec<_>, _>>()?;
        names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        for name in names {
            list(&path.join(&name), &relative.join(&name), listing)?;
        }
    }
    Ok(())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn set_mode(path: &Path, mode: u32) {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    /// A small tree: a nested directory, an executable, a symlink.
    fn tree() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir(root.join("bin")).unwrap();
        std::fs::write(root.join("bin/run"), "#!/bin/sh\necho hi\n").unwrap();
        set_mode(&root.join("bin/run"), 0o755);
        std::fs::write(root.join("app.py"), "print('v1')\n").unwrap();
        set_mode(&root.join("app.py"), 0o644);
        symlink("bin/run", root.join("start")).unwrap();
        set_mode(root, 0o755);
        dir
    }

    #[test]
    fn a_file_digest_is_its_sha256() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, "abc").unwrap();
        assert_eq!(
            file_digest(&path).unwrap(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        // Larger than one chunk: the same as hashing it whole.
        let big = vec![7u8; CHUNK * 2 + 5];
        std::fs::write(&path, &big).unwrap();
        assert_eq!(file_digest(&path).unwrap(), hex(&Sha256::digest(&big)));
    }

    #[test]
    fn the_same_tree_built_twice_has_the_same_digest() {
        let (a, b) = (tree(), tree());
        assert_eq!(
            directory_digest(a.path()).unwrap(),
            directory_digest(b.path()).unwrap()
        );
        assert_eq!(directory_digest(a.path()).unwrap().len(), 64);
    }

    #[test]
    fn content_mode_link_target_and_new_files_each_change_the_digest() {
        let base = directory_digest(tree().path()).unwrap();
        type Change = fn(&Path);
        let changes: [(&str, Change); 5] = [
            ("content", |r| {
                std::fs::write(r.join("app.py"), "print('v2')\n").unwrap()
            }),
            ("mode", |r| set_mode(&r.join("bin/run"), 0o700)),
            ("link target", |r| {
                std::fs::remove_file(r.join("start")).unwrap();
                symlink("app.py", r.join("start")).unwrap();
            }),
            ("new empty file", |r| {
                std::fs::write(r.join("bin/empty"), "").unwrap()
            }),
            ("new empty directory", |r| {
                std::fs::create_dir(r.join("var")).unwrap()
            }),
        ];
        for (what, change) in changes {
            let dir = tree();
            change(dir.path());
            assert_ne!(directory_digest(dir.path()).unwrap(), base, "{what}");
        }
    }

    #[test]
    fn a_renamed_file_changes_the_digest_but_timestamps_do_not() {
        let base = directory_digest(tree().path()).unwrap();
        let dir = tree();
        std::fs::rename(dir.path().join("app.py"), dir.path().join("main.py")).unwrap();
        assert_ne!(directory_digest(dir.path()).unwrap(), base);

        let dir = tree();
        let file = std::fs::File::options()
            .write(true)
            .open(dir.path().join("app.py"))
            .unwrap();
        file.set_modified(std::time::UNIX_EPOCH).unwrap();
        assert_eq!(directory_digest(dir.path()).unwrap(), base);
    }

    #[test]
    fn a_root_that_is_a_symlink_is_digested_through_the_link() {
        let a = tree();
        let links = tempfile::tempdir().unwrap();
        let link = links.path().join("current");
        symlink(a.path(), &link).unwrap();
        let before = directory_digest(&link).unwrap();
        assert_eq!(before, directory_digest(a.path()).unwrap());
        // The same link, another content behind it: another digest.
        std::fs::write(a.path().join("app.py"), "print('v2')\n").unwrap();
        assert_ne!(directory_digest(&link).unwrap(), before);
    }

    #[test]
    fn a_symlink_is_listed_not_followed() {
        let dir = tree();
        // A link to a directory outside the tree: its content is not read.
        let outside = tempfile::tempdir().unwrap();
        symlink(outside.path(), dir.path().join("elsewhere")).unwrap();
        let before = directory_digest(dir.path()).unwrap();
        std::fs::write(outside.path().join("x"), "x").unwrap();
        assert_eq!(directory_digest(dir.path()).unwrap(), before);
    }
}
