//! `herd hosts --output json`: one JSON document of the selected hosts, their
//! groups, connections and merged variables, secrets masked; bad input exits 2.

mod common;

use std::fs;
use std::path::PathBuf;

use serde_json::json;

use common::Herd;

const INVENTORY: &str = "\
all:
  vars:
    ansible_user: deploy
    herd_secret_vars: [db_password]
    db_password: s3cret-Pa55
    tier: all
  hosts:
    bastion:
      ansible_port: 2222
  children:
    web:
      vars:
        tier: web
      hosts:
        web1:
          ansible_host: 10.0.0.1
        web2:
      children:
        canary:
          hosts:
            web2:
              tier: canary
";

fn write(dir: &tempfile::TempDir, name: &str, text: &str) -> PathBuf {
    let path = dir.path().join(name);
    fs::write(&path, text).unwrap();
    path
}

#[test]
fn hosts_as_json_gives_each_host_its_groups_connection_and_masked_vars_and_each_group_its_hosts() {
    let dir = tempfile::tempdir().unwrap();
    let inventory = write(&dir, "inventory.yml", INVENTORY);

    let run = Herd::new()
        .args(["hosts", "--output", "json", "-i"])
        .arg(&inventory)
        .run();

    run.assert_code(0);
    let doc: serde_json::Value = serde_json::from_str(run.stdout()).expect("one JSON document");
    let common = |extra: serde_json::Value| {
        let mut vars = json!({
            "ansible_user": "deploy",
            "herd_secret_vars": ["db_password"],
            "db_password": "***",
        });
        vars.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        vars
    };
    assert_eq!(
        doc,
        json!({ "hosts": [
            {
                "name": "bastion",
                "groups": ["ungrouped"],
                "connection": { "user": "deploy", "address": "bastion", "port": 2222 },
                "vars": common(json!({ "tier": "all", "ansible_port": 2222 })),
            },
            {
                "name": "web1",
                "groups": ["web"],
                "connection": { "user": "deploy", "address": "10.0.0.1", "port": 22 },
                "vars": common(json!({ "tier": "web", "ansible_host": "10.0.0.1" })),
            },
            {
                "name": "web2",
                "groups": ["canary", "web"],
                "connection": { "user": "deploy", "address": "web2", "port": 22 },
                "vars": common(json!({ "tier": "canary" })),
            },
        ],
        "groups": {
            "all": ["bastion", "web1", "web2"],
            "ungrouped": ["bastion"],
            "web": ["web1", "web2"],
            "canary": ["web2"],
        }}),
        "{run}"
    );
    assert!(!run.stdout().contains("s3cret"), "{run}");
}

#[test]
fn hosts_as_json_lists_only_the_hosts_the_limit_selects() {
    let dir = tempfile::tempdir().unwrap();
    let inventory = write(&dir, "inventory.yml", INVENTORY);

    let run = Herd::new()
        .args(["hosts", "--output", "json", "-l", "web:!canary", "-i"])
        .arg(&inventory)
        .run();

    run.assert_code(0);
    let doc: serde_json::Value = serde_json::from_str(run.stdout()).expect("one JSON document");
    let names: Vec<&str> = doc["hosts"]
        .as_array()
        .expect("a list of hosts")
        .iter()
        .map(|h| h["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["web1"], "{run}");
}

#[test]
fn hosts_as_json_on_a_broken_inventory_exits_2_naming_the_place() {
    let dir = tempfile::tempdir().unwrap();
    let inventory = write(&dir, "broken.yml", "all:\n  hosts:\n    web1:\n    web1:\n");

    let run = Herd::new()
        .args(["hosts", "--output", "json", "-i"])
        .arg(&inventory)
        .run();

    run.assert_code(2);
    assert_eq!(run.stdout(), "", "{run}");
    assert!(
        run.stderr().contains("duplicate key `web1`") && run.stderr().contains("broken.yml:4:5"),
        "{run}"
    );
}

#[test]
fn hosts_as_json_with_a_limit_matching_nothing_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let inventory = write(&dir, "inventory.yml", INVENTORY);

    let run = Herd::new()
        .args(["hosts", "--output", "json", "-l", "nosuch", "-i"])
        .arg(&inventory)
        .run();

    run.assert_code(2);
    assert_eq!(run.stdout(), "", "{run}");
    assert!(
        run.stderr().contains("no host or group matches `nosuch`")
            && run.stderr().contains("--limit:1:1"),
        "{run}"
    );
}

#[test]
fn the_text_listing_brackets_an_ipv6_address_before_its_port() {
    let dir = tempfile::tempdir().unwrap();
    let inventory = write(
        &dir,
        "inventory.yml",
        "all:\n  hosts:\n    \"[2001:db8::1]:2222\":\n    v4:\n      ansible_host: 10.0.0.9\n",
    );

    let run = Herd::new()
        .args(["hosts", "-F", "/dev/null", "-i"])
        .arg(&inventory)
        .run();

    run.assert_code(0);
    let lines: Vec<&str> = run.stdout().lines().collect();
    assert_eq!(lines.len(), 2, "{run}");
    assert!(
        lines[0].starts_with("2001:db8::1") && lines[0].ends_with("@[2001:db8::1]:2222"),
        "{run}"
    );
    assert!(
        lines[1].starts_with("v4") && lines[1].ends_with("@10.0.0.9:22"),
        "{run}"
    );
}

#[test]
fn a_connection_set_by_a_secret_variable_is_masked_in_both_listings() {
    let dir = tempfile::tempdir().unwrap();
    let inventory = write(
        &dir,
        "inventory.yml",
        "all:\n  hosts:\n    bastion:\n      herd_secret_vars: [ansible_host, ansible_user, ansible_port]\n      \
         ansible_host: secret-bastion.internal.example\n      ansible_user: secretuser\n      \
         ansible_port: 4422\n    open:\n      ansible_host: 10.0.0.7\n",
    );

    let text = Herd::new()
        .args(["hosts", "-F", "/dev/null", "-i"])
        .arg(&inventory)
        .run();
    let json = Herd::new()
        .args(["hosts", "--output", "json", "-F", "/dev/null", "-i"])
        .arg(&inventory)
        .run();

    text.assert_code(0);
    json.assert_code(0);
    for run in [&text, &json] {
        for secret in ["secret-bastion", "secretuser", "4422"] {
            assert!(!run.stdout().contains(secret), "{secret} shown: {run}");
        }
    }
    assert!(text.stdout().contains("bastion  ***@***:***"), "{text}");
    let doc: serde_json::Value = serde_json::from_str(json.stdout()).unwrap();
    assert_eq!(
        doc["hosts"][0]["connection"],
        json!({"user": "***", "address": "***", "port": "***"})
    );
    assert_eq!(doc["hosts"][1]["connection"]["address"], "10.0.0.7");
    assert_eq!(doc["hosts"][1]["connection"]["port"], 22);
}
