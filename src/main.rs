//! herd: rolling, zero-downtime deploys to a fleet over SSH.

mod playbook;
mod source;
mod template;
mod yaml;

fn main() {}
