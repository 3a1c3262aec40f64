//! herd against Ansible itself. For every inventory `tests/ansible/NAME.yml`
//! and each `--limit` pattern in `tests/ansible/NAME.patterns`, Ansible's
//! answer (`ansible-inventory --list`; `ansible -i INV PATTERN --list-hosts`,
//! through `tests/ansible/ansible_side.py`, with ansible-core from the lab's
//! venv) is compared with `herd hosts --output json`: the hosts, their order,
//! their groups and their merged variables, typed. A difference fails the
//! test unless its kind is listed, with its reason, in
//! `tests/ansible/intentional.txt`.

mod common;

use std::collections::BTreeMap;
use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use serde_json::Value;

use common::Herd;

/// The kinds of difference the test can recognise as intentional; which
/// of them are accepted, and why, is up to `intentional.txt`.
const KINDS: [&str; 4] = [
    "unmatched-term",
    "duplicate-key",
    "not-json-number",
    "key-text",
];

fn fixtures() -> PathBuf {
    common::repo().join("tests/ansible")
}

/// The venv with ansible-core: the one the lab's Gunicorn runs from.
fn venv() -> PathBuf {
    std::env::var_os("HERD_LAB_VENV")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| common::repo().join(".venv"))
}

/// One way herd and Ansible answer differently.
struct Difference {
    inventory: String,
    /// What was asked: a pattern, a host's groups, a variable.
    subject: String,
    herd: String,
    ansible: String,
    /// The intentional kind it is an instance of, if any.
    kind: Option<&'static str>,
}

impl fmt::Display for Difference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {}\n    herd:    {}\n    ansible: {}",
            self.inventory, self.subject, self.herd, self.ansible
        )
    }
}

/// `intentional.txt`: `KIND: reason` lines. Every kind must be one the
/// test recognises and must give its reason.
fn intentional() -> BTreeMap<String, String> {
    let path = fixtures().join("intentional.txt");
    let text = fs::read_to_string(&path).expect("tests/ansible/intentional.txt");
    let mut kinds = BTreeMap::new();
    for (number, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (kind, reason) = line.split_once(':').unwrap_or((line, ""));
        let (kind, reason) = (kind.trim(), reason.trim());
        assert!(
            KINDS.contains(&kind),
            "intentional.txt:{}: `{kind}` is not a kind of difference the test recognises ({})",
            number + 1,
            KINDS.join(", ")
        );
        assert!(
            !reason.is_empty(),
            "intentional.txt:{}: `{kind}` needs its reason after `:`",
            number + 1
        );
        kinds.insert(kind.to_string(), reason.to_string());
    }
    kinds
}

/// Every `NAME.yml` with its `NAME.patterns`, by name; only those named in
/// `HERD_ANSIBLE_DIFF_ONLY` (`groups,ports`), when it is set, to work on a few.
fn inventories() -> Vec<String> {
    let only: Option<Vec<String>> = std::env::var("HERD_ANSIBLE_DIFF_ONLY")
        .ok()
        .filter(|only| !only.trim().is_empty())
        .map(|only| {
            only.split(',')
                .map(|name| format!("{}.yml", name.trim().trim_end_matches(".yml")))
                .collect()
        });
    let mut names: Vec<String> = fs::read_dir(fixtures())
        .expect("tests/ansible")
        .filter_map(|entry| {
            let name = entry.ok()?.file_name().into_string().ok()?;
            let stem = name.strip_suffix(".yml")?;
            fixtures()
                .join(format!("{stem}.patterns"))
                .exists()
                .then_some(name)
        })
        .filter(|name| only.as_ref().is_none_or(|only| only.contains(name)))
        .collect();
    names.sort();
    names
}

/// Ansible's answers for all inventories, from one Python process.
fn ansible_answers(inventories: &[String]) -> Value {
    let venv = venv();
    let python = venv.join("bin/python");
    assert!(
        venv.join("bin/ansible-inventory").exists(),
        "ansible-core is not in {}: run scripts/setup.sh (or set HERD_LAB_VENV)",
        venv.display()
    );
    // No ansible.cfg of this machine's applies: an empty one does.
    let home = tempfile::tempdir().unwrap();
    let config = home.path().join("ansible.cfg");
    fs::write(&config, "").unwrap();
    let output = Command::new(&python)
        .arg("ansible_side.py")
        .args(inventories)
        .current_dir(fixtures())
        .env("ANSIBLE_HOME", home.path())
        .env("ANSIBLE_CONFIG", &config)
        .env("ANSIBLE_LOCALHOST_WARNING", "False")
        .env("ANSIBLE_INVENTORY_UNPARSED_WARNING", "False")
        .env("ANSIBLE_HOST_PATTERN_MISMATCH", "warning")
        .env("ANSIBLE_NOCOLOR", "1")
        .output()
        .expect("the venv's python runs");
    assert!(
        output.status.success(),
        "ansible_side.py failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("ansible_side.py prints JSON")
}

/// What `herd hosts` answered.
enum Herds {
    /// The hosts selected, and every group's hosts.
    Hosts(Vec<Value>, Value),
    /// Exit 2: the error and where it points.
    Refused(String),
    Other(String),
}

impl Herds {
    fn names(&self) -> Option<Vec<String>> {
        match self {
            Herds::Hosts(hosts, _) => Some(hosts.iter().map(|h| str_of(&h["name"])).collect()),
            _ => None,
        }
    }

    fn describe(&self) -> String {
        match self {
            Herds::Hosts(..) => show_names(&self.names().unwrap_or_default()),
            Herds::Refused(error) => format!("exits 2: {error}"),
            Herds::Other(what) => what.clone(),
        }
    }
}

fn str_of(value: &Value) -> String {
    value.as_str().unwrap_or_default().to_string()
}

fn show_names(names: &[String]) -> String {
    format!("[{}]", names.join(", "))
}

/// The host orders Ansible may give: a list of lists of names.
fn orders(value: &Value) -> Vec<Vec<String>> {
    value
        .as_array()
        .map(|orders| {
            orders
                .iter()
                .map(|order| order.as_array().map(|o| o.iter().map(str_of).collect()))
                .collect::<Option<Vec<Vec<String>>>>()
                .unwrap_or_default()
        })
        .unwrap_or_default()
}

/// One order, or each of several (Ansible's own order varies from run to
/// run where it walks groups two or more levels down).
fn show_orders(orders: &[Vec<String>]) -> String {
    match orders {
        [one] => show_names(one),
        several => {
            let each: Vec<String> = several.iter().map(|o| show_names(o)).collect();
            format!(
                "one of {} (Ansible's order varies from run to run here)",
                each.join(" or ")
            )
        }
    }
}

fn herd_hosts(inventory: &str, limit: Option<&str>) -> Herds {
    let mut herd = Herd::new().current_dir(fixtures()).args([
        "hosts",
        "--output",
        "json",
        "-F",
        "/dev/null",
        "-i",
        inventory,
    ]);
    if let Some(limit) = limit {
        herd = herd.arg(format!("--limit={limit}"));
    }
    let run = herd.run();
    match run.code {
        Some(0) => match serde_json::from_str::<Value>(run.stdout()) {
            Ok(doc) if doc["hosts"].is_array() => Herds::Hosts(
                doc["hosts"].as_array().cloned().unwrap_or_default(),
                doc["groups"].clone(),
            ),
            _ => Herds::Other(format!("exits 0 without a JSON document: {run}")),
        },
        Some(2) => {
            let stderr = run.stderr();
            let error = stderr
                .lines()
                .next()
                .unwrap_or("")
                .trim_start_matches("error: ");
            let at = stderr
                .lines()
                .find_map(|l| l.trim().strip_prefix("--> "))
                .map(|at| format!(" (at {at})"))
                .unwrap_or_default();
            Herds::Refused(format!("{error}{at}"))
        }
        _ => Herds::Other(format!("exits {:?}: {}", run.code, run.stderr().trim())),
    }
}

/// A value as the report shows it.
fn show(value: Option<&Value>) -> String {
    value.map_or_else(|| "(absent)".to_string(), Value::to_string)
}

/// Where herd's refusal and one of Ansible's duplicate-key warnings point
/// at the same `LINE:COL`.
fn same_duplicate_key(herd: &str, ansible_warnings: &str) -> bool {
    let Some(at) = herd
        .rsplit_once(" (at ")
        .and_then(|(_, at)| at.strip_suffix(')'))
        .and_then(|at| at.split_once(':'))
        .map(|(_, line_col)| line_col.to_string())
    else {
        return false;
    };
    herd.starts_with("duplicate key")
        && ansible_warnings
            .split("Found duplicate mapping key")
            .skip(1)
            .any(|warning| {
                warning
                    .lines()
                    .find_map(|l| l.trim().strip_prefix("Origin: "))
                    .is_some_and(|origin| origin.ends_with(&format!(":{at}")))
            })
}

/// The differences found on one inventory, and how many things were compared.
struct Findings<'a> {
    inventory: &'a str,
    found: &'a mut Vec<Difference>,
    compared: usize,
}

impl Findings<'_> {
    fn differ(&mut self, subject: String, herd: String, ansible: String) {
        self.differ_as(None, subject, herd, ansible);
    }

    fn differ_as(
        &mut self,
        kind: Option<&'static str>,
        subject: String,
        herd: String,
        ansible: String,
    ) {
        self.found.push(Difference {
            inventory: self.inventory.to_string(),
            subject,
            herd,
            ansible,
            kind,
        });
    }
}

/// The keys of two maps, sorted, each once.
fn all_keys<'m>(
    a: &'m serde_json::Map<String, Value>,
    b: &'m serde_json::Map<String, Value>,
) -> Vec<&'m String> {
    let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
    keys.sort();
    keys.dedup();
    keys
}

/// Every difference on one inventory; returns how many comparisons were made.
fn compare_inventory(name: &str, ansible: &Value, found: &mut Vec<Difference>) -> usize {
    let mut findings = Findings {
        inventory: name,
        found,
        compared: 1,
    };
    if let Some(error) = ansible.get("error") {
        findings.differ(
            "the inventory".into(),
            "(not compared)".into(),
            format!("ansible-inventory fails: {error}"),
        );
        return findings.compared;
    }
    let patterns = ansible["patterns"].as_array().cloned().unwrap_or_default();
    let herd = herd_hosts(name, None);
    let Herds::Hosts(herd_hosts, herd_groups) = &herd else {
        let warnings = str_of(&ansible["inventory_warnings"]);
        let kind = match &herd {
            Herds::Refused(error) if same_duplicate_key(error, &warnings) => Some("duplicate-key"),
            _ => None,
        };
        let count = ansible["hosts"].as_array().map_or(0, Vec::len);
        findings.differ_as(
            kind,
            format!(
                "the inventory (its {} patterns not compared)",
                patterns.len()
            ),
            herd.describe(),
            format!("reads {count} hosts"),
        );
        return findings.compared;
    };

    // The hosts, in order (one of Ansible's orders, where it has several).
    let herd_names = herd.names().unwrap_or_default();
    let all_orders = orders(&ansible["all_orders"]);
    if !all_orders.contains(&herd_names) {
        findings.differ(
            "all hosts, in order (no --limit)".into(),
            show_names(&herd_names),
            show_orders(&all_orders),
        );
    }
    compare_groups(
        &mut findings,
        "the `groups` variable",
        herd_groups,
        &ansible["groups"],
    );
    compare_hosts(&mut findings, herd_hosts, &ansible["hosts"]);
    compare_templates(&mut findings, name, ansible, &all_orders);
    for answer in &patterns {
        compare_pattern(&mut findings, answer);
    }
    findings.compared
}

/// Every group's hosts, in order (Ansible's `groups` variable).
fn compare_groups(findings: &mut Findings, what: &str, herd: &Value, ansible: &Value) {
    let empty = serde_json::Map::new();
    let (herd, ansible) = (
        herd.as_object().unwrap_or(&empty),
        ansible.as_object().unwrap_or(&empty),
    );
    for group in all_keys(herd, ansible) {
        findings.compared += 1;
        let herd_hosts: Option<Vec<String>> = herd
            .get(group)
            .and_then(Value::as_array)
            .map(|hosts| hosts.iter().map(str_of).collect());
        let ansible_orders = ansible.get(group).map(orders);
        let agree = match (&herd_hosts, &ansible_orders) {
            (Some(herd), Some(ansible)) => ansible.contains(herd),
            _ => false,
        };
        if !agree {
            let missing = || "(no such group)".to_string();
            findings.differ(
                format!("hosts of group `{group}` ({what})"),
                herd_hosts.as_deref().map_or_else(missing, show_names),
                ansible_orders.as_deref().map_or_else(missing, show_orders),
            );
        }
    }
}

/// The step `herd plan` renders for every host of `inventory`: what its
/// templates see of Ansible's variables, as JSON.
const MAGIC: &str = "hosts: all\nsteps:\n  - name: magic\n    run: \"MAGIC {{ {'group_names': group_names, \
'short': inventory_hostname_short, 'groups': groups, 'play_hosts_all': ansible_play_hosts_all} | to_json }}\"\n";

/// Each host's rendered MAGIC step, by host, from `herd plan`'s text: a
/// host's line `  NAME:`, then its step's rendered command, shell-quoted.
fn herd_magic(inventory: &str) -> Result<BTreeMap<String, Value>, String> {
    let dir = std::env::temp_dir().join(format!("herd-ansible-diff-{}", std::process::id()));
    fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let playbook = dir.join(format!("{inventory}-magic.yml"));
    fs::write(&playbook, MAGIC).map_err(|e| e.to_string())?;
    let run = Herd::new()
        .current_dir(fixtures())
        .args(["plan", "-F", "/dev/null", "-i", inventory])
        .arg(playbook.to_string_lossy().as_ref())
        .run();
    let _ = fs::remove_file(&playbook);
    let _ = fs::remove_dir(&dir);
    if run.code != Some(0) {
        return Err(format!(
            "herd plan exits {:?}: {}",
            run.code,
            run.stderr().trim()
        ));
    }
    let mut found = BTreeMap::new();
    let mut host = None;
    for line in run.stdout().lines() {
        if let Some(name) = line.strip_prefix("  ").and_then(|l| l.strip_suffix(':')) {
            if !name.starts_with(' ') {
                host = Some(name.to_string());
            }
        } else if let Some(quoted) = line.trim_start().strip_prefix("MAGIC ") {
            let json = quoted
                .strip_prefix('\'')
                .and_then(|q| q.strip_suffix('\''))
                .unwrap_or(quoted)
                .replace("'\\''", "'");
            let value = serde_json::from_str(&json).map_err(|e| format!("{e}: {line}"))?;
            let name = host
                .clone()
                .ok_or_else(|| format!("a step before any host: {line}"))?;
            found.insert(name, value);
        }
    }
    Ok(found)
}

/// What templates see: each host's `group_names` and
/// `inventory_hostname_short`, the `groups` variable and the play's hosts.
fn compare_templates(
    findings: &mut Findings,
    inventory: &str,
    ansible: &Value,
    all_orders: &[Vec<String>],
) {
    let magic = match herd_magic(inventory) {
        Ok(magic) => magic,
        Err(error) => {
            findings.differ("templates (herd plan)".into(), error, "renders them".into());
            return;
        }
    };
    let hosts = ansible["hosts"].as_array().cloned().unwrap_or_default();
    findings.compared += 1;
    if magic.len() != hosts.len() {
        findings.differ(
            "templates: hosts rendered".into(),
            magic.len().to_string(),
            hosts.len().to_string(),
        );
    }
    let mut first = None;
    for ansible_host in &hosts {
        let name = str_of(&ansible_host["name"]);
        let Some(seen) = magic.get(&name) else {
            continue;
        };
        first.get_or_insert(seen);
        findings.compared += 2;
        if seen["group_names"] != ansible_host["groups"] {
            findings.differ(
                format!("template `group_names` of {name}"),
                seen["group_names"].to_string(),
                ansible_host["groups"].to_string(),
            );
        }
        let short = name.split('.').next().unwrap_or_default();
        if seen["short"] != short {
            findings.differ(
                format!("template `inventory_hostname_short` of {name}"),
                seen["short"].to_string(),
                short.to_string(),
            );
        }
    }
    if let Some(seen) = first {
        compare_groups(
            findings,
            "templates' `groups`",
            &seen["groups"],
            &ansible["groups"],
        );
        findings.compared += 1;
        let play: Vec<String> = seen["play_hosts_all"]
            .as_array()
            .map(|hosts| hosts.iter().map(str_of).collect())
            .unwrap_or_default();
        if !all_orders.contains(&play) {
            findings.differ(
                "template `ansible_play_hosts_all` for `hosts: all`".into(),
                show_names(&play),
                show_orders(all_orders),
            );
        }
    }
}

/// Each host's groups, connection and variables. A variable that differs
/// the same way on several hosts, or several variables that differ with
/// the same values (one scalar written at several levels), are one
/// difference.
fn compare_hosts(findings: &mut Findings, herd: &[Value], ansible: &Value) {
    let mut vars: BTreeMap<(String, String, String), Vec<String>> = BTreeMap::new();
    for ansible_host in ansible.as_array().map(Vec::as_slice).unwrap_or_default() {
        let host = str_of(&ansible_host["name"]);
        let Some(herd_host) = herd.iter().find(|h| h["name"] == host.as_str()) else {
            continue;
        };
        findings.compared += 1;
        if herd_host["groups"] != ansible_host["groups"] {
            findings.differ(
                format!("groups of {host}"),
                herd_host["groups"].to_string(),
                ansible_host["groups"].to_string(),
            );
        }
        let empty = serde_json::Map::new();
        let herd_vars = herd_host["vars"].as_object().unwrap_or(&empty);
        let ansible_vars = ansible_host["vars"].as_object().unwrap_or(&empty);
        // Where Ansible would connect: `ansible_host` or the name, and
        // `ansible_port` or 22 (no ssh config: herd runs with -F /dev/null).
        let address = ansible_vars.get("ansible_host").cloned();
        let port = ansible_vars.get("ansible_port").cloned();
        for (field, expected) in [
            (
                "address",
                address.unwrap_or_else(|| Value::from(host.as_str())),
            ),
            ("port", port.unwrap_or_else(|| Value::from(22))),
        ] {
            findings.compared += 1;
            let herd_value = &herd_host["connection"][field];
            if *herd_value != expected {
                findings.differ(
                    format!("connection {field} of {host}"),
                    herd_value.to_string(),
                    expected.to_string(),
                );
            }
        }
        for key in all_keys(herd_vars, ansible_vars) {
            findings.compared += 1;
            let (h, a) = (herd_vars.get(key), ansible_vars.get(key));
            if h != a {
                vars.entry((key.clone(), show(h), show(a)))
                    .or_default()
                    .push(host.clone());
            }
        }
    }
    let mut same: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    for ((key, herd, ansible), hosts) in vars {
        same.entry((herd, ansible))
            .or_default()
            .push(format!("`{key}` of {}", hosts.join(", ")));
    }
    for ((herd, ansible), where_) in same {
        let kind = match (
            serde_json::from_str::<Value>(&herd),
            serde_json::from_str::<Value>(&ansible),
        ) {
            (Ok(h), Ok(a)) => intentional_value_kind(&h, &a),
            _ => None,
        };
        findings.differ_as(
            kind,
            format!("variable {}", where_.join("; ")),
            herd,
            ansible,
        );
    }
}

/// Whether two values differ only in ways listed as intentional: a value
/// JSON cannot carry (infinity, not-a-number, an integer past 64 bits),
/// which herd gives as text (`inf`, `-inf`, `nan`, the digits) and the
/// Ansible side tags (`<float inf>`, `<int N>`), or a mapping key YAML 1.1
/// would read as a boolean, a number or null, which herd keeps as written.
/// `not-json-number` wins when both occur.
fn intentional_value_kind(herd: &Value, ansible: &Value) -> Option<&'static str> {
    let mut kinds = Vec::new();
    if !same_but_intentional(herd, ansible, &mut kinds) {
        return None;
    }
    kinds.sort_unstable();
    kinds.last().copied()
}

fn same_but_intentional(herd: &Value, ansible: &Value, kinds: &mut Vec<&'static str>) -> bool {
    match (herd, ansible) {
        (Value::String(h), Value::String(a)) if h != a => {
            let untagged = a
                .strip_prefix("<float ")
                .or_else(|| a.strip_prefix("<int "))
                .and_then(|rest| rest.strip_suffix('>'));
            if untagged == Some(h.as_str()) {
                kinds.push("not-json-number");
                true
            } else {
                false
            }
        }
        (Value::Array(h), Value::Array(a)) => {
            h.len() == a.len()
                && h.iter()
                    .zip(a)
                    .all(|(h, a)| same_but_intentional(h, a, kinds))
        }
        (Value::Object(h), Value::Object(a)) => {
            if h.len() != a.len() {
                return false;
            }
            h.iter().all(|(key, value)| {
                let (read, as_ansible) = match a.get(key) {
                    Some(found) => (found, false),
                    None => match a.get(&yaml11_key(key)) {
                        Some(found) => (found, true),
                        None => return false,
                    },
                };
                if as_ansible {
                    kinds.push("key-text");
                }
                same_but_intentional(value, read, kinds)
            })
        }
        _ => herd == ansible,
    }
}

/// The JSON key Ansible gives a plain mapping key YAML 1.1 reads as a
/// boolean, an integer or null; other keys as they are.
fn yaml11_key(key: &str) -> String {
    const TRUE: [&str; 11] = [
        "y", "Y", "yes", "Yes", "YES", "true", "True", "TRUE", "on", "On", "ON",
    ];
    const FALSE: [&str; 11] = [
        "n", "N", "no", "No", "NO", "false", "False", "FALSE", "off", "Off", "OFF",
    ];
    if TRUE.contains(&key) {
        return "true".into();
    }
    if FALSE.contains(&key) {
        return "false".into();
    }
    if ["~", "null", "Null", "NULL"].contains(&key) {
        return "null".into();
    }
    let digits = key.replace('_', "");
    let (sign, unsigned) = match digits.strip_prefix('-') {
        Some(rest) => ("-", rest),
        None => ("", digits.strip_prefix('+').unwrap_or(&digits)),
    };
    let parsed = if let Some(hex) = unsigned.strip_prefix("0x") {
        i128::from_str_radix(hex, 16).ok()
    } else if let Some(binary) = unsigned.strip_prefix("0b") {
        i128::from_str_radix(binary, 2).ok()
    } else if unsigned.len() > 1 && unsigned.starts_with('0') {
        i128::from_str_radix(&unsigned[1..], 8).ok()
    } else if !unsigned.is_empty() && unsigned.bytes().all(|b| b.is_ascii_digit()) {
        unsigned.parse().ok()
    } else {
        None
    };
    match parsed {
        Some(number) => format!("{sign}{number}"),
        None => key.to_string(),
    }
}

/// One `--limit` pattern: the same hosts in the same order (one of
/// Ansible's, where it has several), or both refuse it.
fn compare_pattern(findings: &mut Findings, answer: &Value) {
    findings.compared += 1;
    let pattern = str_of(&answer["pattern"]);
    let herd = herd_hosts(findings.inventory, Some(&pattern));
    let ansible_hosts: Option<Vec<String>> = answer["hosts"]
        .as_array()
        .map(|hosts| hosts.iter().map(str_of).collect());
    let unmatched: Vec<String> = answer["unmatched"]
        .as_array()
        .map(|terms| terms.iter().map(str_of).collect())
        .unwrap_or_default();
    let ansible_orders = match answer.get("orders") {
        Some(several) => orders(several),
        None => ansible_hosts.iter().cloned().collect(),
    };
    let kind = match (&herd, &ansible_hosts) {
        (Herds::Hosts(..), Some(_))
            if herd.names().is_some_and(|h| ansible_orders.contains(&h)) =>
        {
            return
        }
        (Herds::Refused(_), None) => return,
        // herd refuses a term Ansible ignores, and says which.
        (Herds::Refused(error), Some(_))
            if unmatched.iter().any(|t| error.contains(&format!("`{t}`"))) =>
        {
            Some("unmatched-term")
        }
        _ => None,
    };
    let ansible_said = match &ansible_hosts {
        Some(_) if !unmatched.is_empty() => format!(
            "{} (matching nothing: `{}`)",
            show_orders(&ansible_orders),
            unmatched.join("`, `")
        ),
        Some(_) => show_orders(&ansible_orders),
        None => format!("error: {}", str_of(&answer["error"])),
    };
    findings.differ_as(
        kind,
        format!("--limit '{pattern}'"),
        herd.describe(),
        ansible_said,
    );
}

#[test]
fn herd_reads_inventories_and_patterns_as_ansible_does() {
    let started = Instant::now();
    let accepted = intentional();
    let inventories = inventories();
    assert!(
        !inventories.is_empty(),
        "no inventories in tests/ansible (or none named in HERD_ANSIBLE_DIFF_ONLY)"
    );
    let answers = ansible_answers(&inventories);
    let ansible_took = started.elapsed();

    let mut found = Vec::new();
    let mut compared = 0;
    for name in &inventories {
        compared += compare_inventory(name, &answers[name.as_str()], &mut found);
    }
    let (kept, unlisted): (Vec<&Difference>, Vec<&Difference>) = found
        .iter()
        .partition(|d| d.kind.is_some_and(|kind| accepted.contains_key(kind)));
    eprintln!(
        "{} inventories, {compared} comparisons in {:.1?} (Ansible {:.1?}); {} intentional differences, {} not",
        inventories.len(),
        started.elapsed(),
        ansible_took,
        kept.len(),
        unlisted.len()
    );
    for difference in &kept {
        let kind = difference.kind.unwrap_or_default();
        eprintln!("intentional ({kind}): {difference}");
    }
    let listing: Vec<String> = unlisted.iter().map(ToString::to_string).collect();
    assert!(
        unlisted.is_empty(),
        "herd and Ansible differ in {} way(s) not listed in tests/ansible/intentional.txt:\n\n{}\n",
        unlisted.len(),
        listing.join("\n")
    );
}

#[test]
fn every_fixture_inventory_has_its_patterns_and_only_known_kinds_are_intentional() {
    let accepted = intentional();
    for kind in accepted.keys() {
        assert!(KINDS.contains(&kind.as_str()), "{kind}");
    }
    let dir = fixtures();
    for entry in fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) == Some("yml") {
            assert!(
                Path::new(&path.with_extension("patterns")).exists(),
                "{} has no .patterns file: it would not be compared",
                path.display()
            );
        }
    }
}
