//! The OpenSSH client config, read as `ssh` reads it.

pub mod pattern;
