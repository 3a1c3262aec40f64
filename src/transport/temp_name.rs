//! Names for files an upload writes before moving them into place.
//!
//! A predictable name (`DEST.tmp`) lets anyone who can write to the
//! destination's directory plant a symlink there first and have herd write
//! through it, so the name carries 64 random bits. The file is still created
//! exclusively (`O_EXCL`): a name that exists is never opened.

use std::hash::{BuildHasher, Hasher};
use std::io::Read;

/// `path` with `.herd-upload-` and 16 random hex digits appended: a sibling
/// of `path`, on the same filesystem, so a rename puts it in place.
pub fn beside(path: &str) -> String {
    format!("{path}.herd-upload-{}", token())
}

/// 16 random hex digits.
pub fn token() -> String {
    format!("{:016x}", random_u64())
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
}
