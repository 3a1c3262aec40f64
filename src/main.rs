//! herd: rolling, zero-downtime deploys to a fleet over SSH.

mod inventory;
mod source;
mod yaml;

fn main() {}
