//! The fleet as written in an Ansible YAML inventory, and `--limit` patterns
//! over it.
//!
//! Operators already keep these files, so herd reads them as Ansible's YAML
//! inventory plugin does: plain scalars under YAML 1.1 (`yes` is true, `0755`
//! is 493), `host:port` keys, groups nested to any depth, host ranges, vars
//! at every level merged with Ansible's precedence, `all` and `ungrouped`
//! reconciled as Ansible does, and Ansible's host patterns. What the connection
//! variables (`ansible_host`, `ansible_port`, ...) mean is another layer's
//! business; here they are vars like any other.

mod address;
mod build;
mod pattern;
mod range;
mod raw;

use std::path::{Path, PathBuf};

use crate::source::SourceError;
use crate::yaml;

pub use pattern::PatternError;

/// Variables, as written in the inventory.
pub type Vars = serde_json::Map<String, serde_json::Value>;

/// Where each variable's value is written in the inventory file.
pub type Origins = std::collections::HashMap<String, yaml::Pos>;

/// The variable that names secret variables; its values at every level count.
pub const SECRET_VARS: &str = "herd_secret_vars";

/// Each value of `herd_secret_vars` and where it is written.
pub type SecretVars = Vec<(serde_json::Value, yaml::Pos)>;

/// A loaded inventory: its hosts, with their groups and merged vars.
#[derive(Debug)]
pub struct Inventory {
    pub file: PathBuf,
    /// The file's text, to point at a variable found wrong later.
    pub text: String,
    /// Each host once, in the order Ansible lists `all` (`ansible all
    /// --list-hosts`): hosts written under `all`, then its children's,
    /// level by level (see [`Inventory::group_hosts`]).
    pub hosts: Vec<Host>,
    /// Every group, `all` and `ungrouped` first, then in order of first mention.
    pub groups: Vec<Group>,
    /// Positions in `hosts`, in the order the file first names the hosts:
    /// the order in which a glob or a regular expression gives hosts by name.
    pub declared: Vec<usize>,
}

/// One group as the file builds it: its own hosts and its children.
#[derive(Debug, Clone, PartialEq)]
pub struct Group {
    pub name: String,
    /// The hosts the group lists itself (positions in `Inventory::hosts`), in
    /// the order it lists them, each once. `ungrouped` lists the hosts in no
    /// other group.
    pub hosts: Vec<usize>,
    /// Child groups (positions in `Inventory::groups`), in the order written.
    pub children: Vec<usize>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Host {
    pub name: String,
    /// Where the host is first named (a range's start, for a host of a range).
    pub name_at: yaml::Pos,
    /// Merged: `all` < parent group < child group < the host's own vars.
    pub vars: Vars,
    /// Where each of `vars` is written (the definition that won).
    pub origins: Origins,
    /// Every `herd_secret_vars` that applies to the host (each group's and
    /// its own, in precedence order), with where it is written.
    pub secret_vars: SecretVars,
    /// Every group the host belongs to, ancestors included, in precedence
    /// order (`all` first).
    pub groups: Vec<String>,
}

/// The hosts of group `start` in Ansible's order (see [`Inventory::group_hosts`]).
fn hosts_in_order(groups: &[Group], start: usize, host_count: usize) -> Vec<usize> {
    let mut seen_group = vec![false; groups.len()];
    let mut seen_host = vec![false; host_count];
    let mut order = Vec::new();
    let mut level = vec![start];
    seen_group[start] = true;
    while !level.is_empty() {
        for &id in &level {
            for &host in &groups[id].hosts {
                if !std::mem::replace(&mut seen_host[host], true) {
                    order.push(host);
                }
            }
        }
        level.sort_unstable();
        let mut next = Vec::new();
        for &id in &level {
            for &child in &groups[id].children {
                if !std::mem::replace(&mut seen_group[child], true) {
                    next.push(child);
                }
            }
        }
        level = next;
    }
    order
}

#[derive(thiserror::Error, Debug)]
pub enum InventoryError {
    #[error("cannot read inventory {path}: {source}")]
    Read {
        path: PathBuf,
        source: crate::source::ReadError,
    },
    #[error("{0}")]
    Source(#[from] SourceError),
}

impl Inventory {
    /// Reads and parses the inventory at `path`.
    pub fn load(path: &Path) -> Result<Inventory, InventoryError> {
        let text = crate::source::read_text(path).map_err(|source| InventoryError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(path, &text)
    }

    /// Parses `text`, the contents of the inventory file `path`.
    pub fn parse(path: &Path, text: &str) -> Result<Inventory, InventoryError> {
        let document = yaml::Document::load(path, text)?;
        raw::check_names(&document)?;
        let raw: raw::RawInventory = document.deserialize_with(yaml::Schema::Yaml11)?;
        let (hosts, groups, declared) = build::build(path, text, raw)?;
        Ok(Inventory {
            file: path.to_path_buf(),
            text: text.to_string(),
            hosts,
            groups,
            declared,
        })
    }

    /// An error at where `host`'s variable `var` is written, if it is
    /// written in this file.
    pub fn var_error(&self, host: &Host, var: &str, message: &str) -> Option<SourceError> {
        let at = host.origins.get(var)?;
        Some(SourceError::at(
            &self.file, &self.text, at.line, at.column, message,
        ))
    }

    /// An error at where `host` is first named.
    pub fn name_error(&self, host: &Host, message: &str) -> SourceError {
        SourceError::at(
            &self.file,
            &self.text,
            host.name_at.line,
            host.name_at.column,
            message,
        )
    }

    /// The group called `name`.
    #[cfg(test)]
    pub fn group(&self, name: &str) -> Option<&Group> {
        self.groups.iter().find(|g| g.name == name)
    }

    /// The hosts of group `name` (positions in `hosts`) in Ansible's order:
    /// the group's own hosts, then its children's in the order written, then
    /// level by level. Two or more levels down Ansible's order changes from
    /// run to run (it walks a set); herd takes each group's children after
    /// the groups of the level before in order of first mention, each child
    /// in the order written. A host comes once, where it is first reached.
    pub fn group_hosts(&self, name: &str) -> Vec<usize> {
        match self.groups.iter().position(|g| g.name == name) {
            Some(start) => hosts_in_order(&self.groups, start, self.hosts.len()),
            None => Vec::new(),
        }
    }

    /// Hosts matching an Ansible pattern, in Ansible's order.
    pub fn select(&self, pattern: &str) -> Result<Vec<&Host>, PatternError> {
        pattern::select(self, pattern)
    }

    /// Hosts matching a `--limit` pattern, where `@path` reads terms from a
    /// file, in Ansible's order.
    pub fn select_limit(&self, limit: &str) -> Result<Vec<&Host>, PatternError> {
        pattern::select_limit(self, limit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const FLEET: &str = "\
all:
  vars:
    ansible_user: deploy
    app_dir: /srv/app
    tier: all
  hosts:
    bastion.example.com:
      ansible_port: 2222
  children:
    web:
      vars:
        tier: web
        app_dir: /srv/web
      hosts:
        web[01:03].example.com:
        canary.example.com: { ansible_port: 2200, tier: canary }
      children:
        web_eu:
          hosts:
            web01.example.com:
              region: eu
          vars:
            tier: web_eu
    db:
      hosts:
        db-[a:b]:
      vars:
        tier: db
    prod:
      children:
        web:
        db:
      vars:
        env: prod
        tier: prod
";

    fn parse(text: &str) -> Inventory {
        Inventory::parse(Path::new("inventory.yml"), text).unwrap()
    }

    fn error(text: &str) -> String {
        Inventory::parse(Path::new("inventory.yml"), text)
            .unwrap_err()
            .to_string()
    }

    fn host<'i>(inventory: &'i Inventory, name: &str) -> &'i Host {
        inventory.hosts.iter().find(|h| h.name == name).unwrap()
    }

    #[test]
    fn hosts_come_in_declaration_order_once_each() {
        let inventory = parse(FLEET);
        let names: Vec<&str> = inventory.hosts.iter().map(|h| h.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "bastion.example.com",
                "web01.example.com",
                "web02.example.com",
                "web03.example.com",
                "canary.example.com",
                "db-a",
                "db-b",
            ]
        );
        assert_eq!(inventory.file, Path::new("inventory.yml"));
    }

    #[test]
    fn a_groups_hosts_come_its_own_first_then_level_by_level() {
        // The example of Ansible's inventory guide: `datacenter[0]` is a web
        // server, not a leaf, though the leaves are written first.
        let inventory = parse(
            "leafs:\n  hosts:\n    leaf01:\n    leaf02:\nspines:\n  hosts:\n    spine01:\n    spine02:\n\
             network:\n  children:\n    leafs:\n    spines:\n\
             webservers:\n  hosts:\n    webserver01:\n    webserver02:\n\
             datacenter:\n  children:\n    network:\n    webservers:\n  hosts:\n    spine02:\n\
             loose:\n  hosts:\n    solo:\nall:\n  hosts:\n    solo:\n    stray:\n",
        );
        let names = |group: &str| -> Vec<&str> {
            inventory
                .group_hosts(group)
                .into_iter()
                .map(|id| inventory.hosts[id].name.as_str())
                .collect()
        };
        assert_eq!(
            names("datacenter"),
            [
                "spine02",
                "webserver01",
                "webserver02",
                "leaf01",
                "leaf02",
                "spine01"
            ]
        );
        assert_eq!(names("network"), ["leaf01", "leaf02", "spine01", "spine02"]);
        assert_eq!(names("ungrouped"), ["stray"]);
        let loose = inventory.groups.iter().find(|g| g.name == "loose").unwrap();
        assert_eq!(loose.hosts.len(), 1);
        assert!(names("nosuch").is_empty());
    }

    #[test]
    fn hosts_know_all_their_groups_in_precedence_order() {
        let inventory = parse(FLEET);
        // web is at depth 2 (all > prod > web), so it applies after prod.
        assert_eq!(
            host(&inventory, "web01.example.com").groups,
            ["all", "prod", "web", "web_eu"]
        );
        assert_eq!(
            host(&inventory, "web02.example.com").groups,
            ["all", "prod", "web"]
        );
        assert_eq!(host(&inventory, "db-b").groups, ["all", "prod", "db"]);
        assert_eq!(
            host(&inventory, "bastion.example.com").groups,
            ["all", "ungrouped"]
        );
    }

    #[test]
    fn vars_merge_all_then_parents_then_children_then_host() {
        let inventory = parse(FLEET);
        let vars = |name| serde_json::Value::Object(host(&inventory, name).vars.clone());
        assert_eq!(
            vars("web01.example.com"),
            json!({"ansible_user": "deploy", "app_dir": "/srv/web", "tier": "web_eu", "env": "prod", "region": "eu"})
        );
        assert_eq!(
            vars("web02.example.com"),
            json!({"ansible_user": "deploy", "app_dir": "/srv/web", "tier": "web", "env": "prod"})
        );
        assert_eq!(
            vars("canary.example.com"),
            json!({"ansible_user": "deploy", "app_dir": "/srv/web", "tier": "canary", "env": "prod", "ansible_port": 2200})
        );
        assert_eq!(vars("db-a")["tier"], "db");
        assert_eq!(
            vars("bastion.example.com"),
            json!({"ansible_user": "deploy", "app_dir": "/srv/app", "tier": "all", "ansible_port": 2222})
        );
    }

    #[test]
    fn groups_at_the_same_depth_apply_by_name_whatever_the_file_order() {
        let text = "\
zeta:
  hosts: { h1: }
  vars: { colour: zeta }
alpha:
  hosts: { h1: }
  vars: { colour: alpha, shape: alpha }
";
        let inventory = parse(text);
        assert_eq!(inventory.hosts[0].vars["colour"], "zeta");
        assert_eq!(inventory.hosts[0].vars["shape"], "alpha");
        assert_eq!(inventory.hosts[0].groups, ["all", "alpha", "zeta"]);
    }

    #[test]
    fn group_priority_breaks_ties_before_names() {
        let text = "\
alpha:
  hosts: { h1: }
  vars: { colour: alpha, ansible_group_priority: 10 }
zeta:
  hosts: { h1: }
  vars: { colour: zeta }
";
        assert_eq!(parse(text).hosts[0].vars["colour"], "alpha");
    }

    #[test]
    fn depth_is_the_longest_path_from_all() {
        // `deep` hangs under `all` directly and under a three-level chain; the
        // chain makes it the deepest group, so its vars win over `mid`'s.
        let text = "\
all:
  children:
    deep:
      hosts: { h1: }
      vars: { v: deep }
    top:
      children:
        mid:
          vars: { v: mid }
          hosts: { h1: }
          children:
            deep:
";
        let inventory = parse(text);
        assert_eq!(inventory.hosts[0].vars["v"], "deep");
        assert_eq!(inventory.hosts[0].groups, ["all", "top", "mid", "deep"]);
    }

    #[test]
    fn a_host_declared_twice_merges_and_the_later_declaration_wins() {
        let text = "\
all:
  hosts:
    h1: { a: 1, b: 1 }
  children:
    g:
      hosts:
        h1: { b: 2 }
";
        let inventory = parse(text);
        assert_eq!(inventory.hosts.len(), 1);
        assert_eq!(
            serde_json::Value::Object(inventory.hosts[0].vars.clone()),
            json!({"a": 1, "b": 2})
        );
        // Listed under `all` but also in `g`: not ungrouped, as in Ansible.
        assert_eq!(inventory.hosts[0].groups, ["all", "g"]);
    }

    #[test]
    fn hosts_come_in_the_order_ansible_lists_all() {
        let text = "\
all:
  children:
    g:
      children:
        inner: { hosts: { first: } }
      hosts:
        second:
";
        // `g`'s own host comes before its child's, though written after.
        let names: Vec<String> = parse(text).hosts.into_iter().map(|h| h.name).collect();
        assert_eq!(names, ["second", "first"]);
    }

    #[test]
    fn empty_files_and_empty_sections_are_fine() {
        assert!(parse("").hosts.is_empty());
        assert!(parse("all:\n").hosts.is_empty());
        let inventory = parse("all:\n  hosts:\n  vars:\n  children:\n    web:\n");
        assert!(inventory.hosts.is_empty());
        assert!(inventory.select("web").unwrap().is_empty());
    }

    #[test]
    fn bad_range_points_at_its_bracket() {
        let text = "\
all:
  children:
    web:
      hosts:
        web[10:01].example.com:
";
        assert_eq!(
            error(text),
            "bad host range `[10:01]` in `web[10:01].example.com`: start `10` is after end `01`
  --> inventory.yml:5:12
  |
5 |         web[10:01].example.com:
  |            ^"
        );
    }

    #[test]
    fn bad_range_is_found_under_the_right_group() {
        let text = "\
all:
  children:
    web:
      hosts:
        a[1:2]:
    db:
      hosts:
        a[1:x]:
";
        assert!(
            error(text).contains("--> inventory.yml:8:10\n"),
            "{}",
            error(text)
        );
        let quoted = "db:\n  hosts:\n    'n[3:1]': {}\n";
        assert!(
            error(quoted).contains("--> inventory.yml:3:7\n"),
            "{}",
            error(quoted)
        );
        let flow = "db:\n  hosts: { ok1: , \"n[1:\": {} }\n";
        assert!(
            error(flow).starts_with("unclosed `[` in host name `n[1:`\n  --> inventory.yml:2:21\n"),
            "{}",
            error(flow)
        );
    }

    #[test]
    fn a_name_that_would_split_or_forge_a_line_is_refused_where_it_is() {
        let why = "herd prints names at the start of its lines and passes them to hooks separated by spaces";
        for (text, said, at) in [
            (
                "all:\n  hosts:\n    \"web2 --drain\": {}\n",
                "host name `web2 --drain` holds whitespace",
                "3:5",
            ),
            (
                "all:\n  hosts:\n    \"h1\\nherd: done\": {}\n",
                "host name `h1\\nherd: done` holds a control character (\\n)",
                "3:5",
            ),
            (
                "all:\n  children:\n    web:\n      hosts: { ok: , \"w\\e[2K\": }\n",
                "host name `w\\u{1b}[2K` holds a control character (\\u{1b})",
                "4:22",
            ),
            (
                "all:\n  hosts: \"web*\"\n",
                "host name `web*` holds a `*`",
                "2:10",
            ),
            (
                "all:\n  hosts: \"ok\\u202Eliaf\"\n",
                "host name `ok\\u{202e}liaf` holds a control character (\\u{202e})",
                "2:10",
            ),
            (
                "all:\n  children:\n    \"a b\": { hosts: { h: } }\n",
                "group name `a b` holds whitespace",
                "3:5",
            ),
        ] {
            let error = error(text);
            assert!(
                error.starts_with(&format!("{said}: {why}")),
                "{text:?}: {error}"
            );
            assert!(
                error.contains(&format!("--> inventory.yml:{at}\n")),
                "{text:?}: {error}"
            );
        }
    }

    #[test]
    fn unknown_key_in_a_group_is_pinned() {
        let text = "\
all:
  children:
    web:
      host:
        web1:
";
        assert_eq!(
            error(text),
            "all.children.web: unknown key `host`, expected one of `hosts`, `vars`, `children`
  --> inventory.yml:4:7
  |
4 |       host:
  |       ^"
        );
    }

    #[test]
    fn malformed_sections_are_located() {
        assert!(
            error("web:\n  hosts: [a, b]\n").contains("inventory.yml:2:10"),
            "{}",
            error("web:\n  hosts: [a, b]\n")
        );
        let duplicate = error("web:\n  hosts:\n  hosts:\n");
        assert!(
            duplicate.starts_with(
                "duplicate key `hosts`: it is already written at line 2, column 3\n  --> inventory.yml:3:3\n"
            ),
            "{duplicate}"
        );
        assert!(error("- web\n").starts_with("invalid type: sequence"));
    }

    #[test]
    fn merge_keys_apply_and_written_keys_win() {
        let text = "\
all:
  vars:
    defaults: &defaults
      ansible_user: deploy
      ansible_port: 22
  children:
    web:
      hosts:
        web1:
          <<: *defaults
          ansible_port: 2200
        web2: { <<: [*defaults], ansible_user: ops }
";
        let inventory = parse(text);
        let web1 = &host(&inventory, "web1").vars;
        assert_eq!(web1["ansible_user"], "deploy");
        assert_eq!(web1["ansible_port"], 2200);
        assert!(!web1.contains_key("<<"));
        let web2 = &host(&inventory, "web2").vars;
        assert_eq!(web2["ansible_user"], "ops");
        assert_eq!(web2["ansible_port"], 22);
        // A merged value is written where its anchor is.
        let origin = host(&inventory, "web2").origins["ansible_port"];
        assert_eq!((origin.line, origin.column), (5, 21));
    }

    #[test]
    fn duplicate_keys_anywhere_are_refused() {
        let host_twice = "web:\n  hosts:\n    web1:\n    web2:\n    web1: { a: 1 }\n";
        assert!(
            error(host_twice).starts_with(
                "duplicate key `web1`: it is already written at line 3, column 5\n  --> inventory.yml:5:5\n"
            ),
            "{}",
            error(host_twice)
        );
        let var_twice = "all:\n  vars:\n    a: 1\n    b: 2\n    a: 3\n";
        assert!(
            error(var_twice).starts_with("duplicate key `a`: it is already written at line 3, column 5\n  --> inventory.yml:5:5\n"),
            "{}",
            error(var_twice)
        );
    }

    #[test]
    fn vars_remember_where_the_winning_value_is_written() {
        let text = "all:\n  vars:\n    port: 1\n  hosts:\n    a:\n    b: { port: 2 }\n";
        let inventory = parse(text);
        let line = |name| host(&inventory, name).origins["port"].line;
        assert_eq!((line("a"), line("b")), (3, 6));
    }

    #[test]
    fn cycles_are_refused() {
        let text = "\
all:
  children:
    a:
      children:
        b:
          children:
            a:
";
        assert_eq!(
            error(text),
            "group `a` cannot be a child of `b`, which is already inside it
  --> inventory.yml:7:13
  |
7 |             a:
  |             ^"
        );
        assert!(error("web:\n  children:\n    all:\n")
            .starts_with("group `all` cannot be a child of `web`"));
        assert!(error("web:\n  children:\n    web:\n")
            .starts_with("group `web` cannot be a child of itself"));
    }

    #[test]
    fn connection_vars_are_plain_vars() {
        let inventory =
            parse("all:\n  hosts:\n    h: { ansible_port: abc, ansible_become: yes }\n");
        assert_eq!(inventory.hosts[0].vars["ansible_port"], "abc");
        assert_eq!(inventory.hosts[0].vars["ansible_become"], true);
    }

    #[test]
    fn unreadable_files_name_the_path() {
        let error = Inventory::load(Path::new("/nonexistent/inventory.yml")).unwrap_err();
        assert!(matches!(error, InventoryError::Read { .. }));
        assert_eq!(
            error.to_string(),
            "cannot read inventory /nonexistent/inventory.yml: No such file or directory (os error 2)"
        );
    }

    #[test]
    fn load_reads_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hosts.yml");
        std::fs::write(&path, FLEET).unwrap();
        let inventory = Inventory::load(&path).unwrap();
        assert_eq!(inventory.hosts.len(), 7);
        assert_eq!(inventory.file, path);
    }

    fn names_of<'i>(inventory: &'i Inventory, ids: &[usize]) -> Vec<&'i str> {
        ids.iter()
            .map(|&id| inventory.hosts[id].name.as_str())
            .collect()
    }

    fn all_vars(inventory: &Inventory, name: &str) -> serde_json::Value {
        serde_json::Value::Object(host(inventory, name).vars.clone())
    }

    #[test]
    fn plain_scalars_read_as_yaml_1_1_as_ansible_reads_them() {
        let text = "\
all:
  hosts:
    h1:
      b: [yes, No, ON, off, TRUE, yEs, y]
      mode: 0755
      hex: 0x1F
      big: 1_000
      time: 1:30
      strings: [1e3, 0o17, 09, 1.5e3, -.5]
      floats: [1.5e+3, 1., .5, 1:30.5]
      odd: [.inf, -.Inf, .NaN]
      huge: [123456789012345678901234567890, -18446744073709551617]
      dates: [2001-12-14, 2001-12-14t21:59:43.10-05:00, 2002-12-14 21:59:43Z]
      quoted: ['yes', \"0755\", '1:30', !!str 0x1F]
      tagged: [!!int \"12\", !!float 1, !!bool 'on', !!null x, !!int 0755]
      nested: { deep: [on, { mode: 0644 }] }
";
        assert_eq!(
            all_vars(&parse(text), "h1"),
            json!({
                "b": [true, false, true, false, true, "yEs", "y"],
                "mode": 493,
                "hex": 31,
                "big": 1000,
                "time": 90,
                "strings": ["1e3", "0o17", "09", "1.5e3", "-.5"],
                "floats": [1500.0, 1.0, 0.5, 90.5],
                "odd": ["inf", "-inf", "nan"],
                "huge": ["123456789012345678901234567890", "-18446744073709551617"],
                "dates": ["2001-12-14", "2001-12-14T21:59:43.100000-05:00", "2002-12-14T21:59:43+00:00"],
                "quoted": ["yes", "0755", "1:30", "0x1F"],
                "tagged": [12, 1.0, true, null, 493],
                "nested": { "deep": [true, { "mode": 420 }] },
            })
        );
    }

    #[test]
    fn scalars_ansible_cannot_read_are_errors_where_written() {
        assert_eq!(
            error("all:\n  vars:\n    x: =\n"),
            "all.vars.x: a plain `=` is YAML 1.1's value key, which Ansible cannot read; quote it
  --> inventory.yml:3:8
  |
3 |     x: =
  |        ^"
        );
        let date = error("g:\n  hosts:\n    h: { day: 2023-02-29 }\n");
        assert!(
            date.starts_with("g.hosts.h.day: `2023-02-29` reads as a date under YAML 1.1, as Ansible reads inventories, but there is no such day; quote it\n  --> inventory.yml:3:15\n"),
            "{date}"
        );
    }

    #[test]
    fn names_yaml_1_1_reads_as_no_text_are_refused() {
        assert_eq!(
            error("yes:\n  hosts: { h: }\n"),
            "group name `yes` reads as a boolean under YAML 1.1, as Ansible reads inventories; quote it
  --> inventory.yml:1:1
  |
1 | yes:
  | ^"
        );
        assert!(error("g:\n  hosts:\n    1:30:\n").starts_with(
            "host name `1:30` reads as a number under YAML 1.1, as Ansible reads inventories; quote it\n  --> inventory.yml:3:5\n"
        ));
        assert!(error("g:\n  children:\n    ~:\n")
            .starts_with("group name `~` reads as nothing (null)"));
        assert!(error("g:\n  hosts: 2024-01-01\n")
            .starts_with("host name `2024-01-01` reads as a date"));
        let quoted = parse("'yes':\n  hosts: { '12': , \"on\": , '1:30': }\n");
        // Quoted, `1:30` is text, so a host `1` on port 30, as in Ansible.
        assert_eq!(
            names_of(&quoted, &quoted.group_hosts("yes")),
            ["12", "on", "1"]
        );
        assert_eq!(quoted.hosts[2].vars["ansible_port"], 30);
    }

    #[test]
    fn a_port_in_a_host_key_is_its_ansible_port() {
        let text = "\
web:
  hosts:
    badwolf.example.com:5309:
    '[2001:db8::1]:2222':
    fe80::1:
    pinned:2200: { ansible_port: 2300 }
    r[1:2]:2000:
    bad_:22:
    zero:0:
    before:
prod:
  hosts:
    before:2500:
    badwolf.example.com:2600:
";
        let inventory = parse(text);
        let port = |name| host(&inventory, name).vars.get("ansible_port").cloned();
        assert_eq!(port("badwolf.example.com"), Some(json!(5309)));
        assert_eq!(port("2001:db8::1"), Some(json!(2222)));
        assert_eq!(port("fe80::1"), None);
        assert_eq!(port("pinned"), Some(json!(2300)));
        assert_eq!(
            (port("r1"), port("r2")),
            (Some(json!(2000)), Some(json!(2000)))
        );
        // Not a host name before the colon: the key stays whole, as in Ansible.
        assert_eq!(port("bad_:22"), None);
        assert_eq!(port("zero"), None);
        // A host that already exists keeps its port.
        assert_eq!(port("before"), None);
        assert_eq!(
            names_of(&inventory, &inventory.group_hosts("prod")),
            ["before", "badwolf.example.com"]
        );
        let origin = host(&inventory, "r2").origins["ansible_port"];
        assert_eq!((origin.line, origin.column), (7, 5));
        // A bad range behind a port is pointed at in the key.
        assert!(
            error("g:\n  hosts:\n    web[3:1]:22:\n").contains("--> inventory.yml:3:8\n"),
            "{}",
            error("g:\n  hosts:\n    web[3:1]:22:\n")
        );
    }

    #[test]
    fn ungrouped_keeps_its_groups_and_vars_and_loses_hosts_grouped_elsewhere() {
        let text = "\
web:
  hosts:
    w1:
    d2:
all:
  hosts:
    a1:
    w1:
ungrouped:
  hosts:
    u1:
    w1:
    d2:
  children:
    ug:
      hosts:
        g1:
        d2:
  vars:
    uv: 1
";
        let inventory = parse(text);
        // Checked against `ansible ungrouped --list-hosts` and `all`.
        assert_eq!(
            names_of(&inventory, &inventory.group_hosts("ungrouped")),
            ["u1", "a1", "g1", "d2"]
        );
        let all: Vec<&str> = inventory.hosts.iter().map(|h| h.name.as_str()).collect();
        assert_eq!(all, ["a1", "w1", "u1", "d2", "g1"]);
        assert_eq!(all_vars(&inventory, "g1"), json!({"uv": 1}));
        assert_eq!(host(&inventory, "g1").groups, ["all", "ungrouped", "ug"]);
        assert_eq!(all_vars(&inventory, "u1"), json!({"uv": 1}));
        assert_eq!(all_vars(&inventory, "a1"), json!({"uv": 1}));
        // Listed in `ungrouped` and elsewhere: out of `ungrouped`, even
        // when also under a child of it (as Ansible does).
        assert_eq!(host(&inventory, "w1").groups, ["all", "web"]);
        assert_eq!(host(&inventory, "d2").groups, ["all", "web", "ug"]);
        assert_eq!(all_vars(&inventory, "d2"), json!({}));
    }

    #[test]
    fn all_lists_its_hosts_then_groups_without_another_parent() {
        // Checked against `ansible all --list-hosts` (ansible-core 2.19).
        let text = "\
web:
  hosts: { w1: , w2: }
prod:
  children: { web: }
  hosts: { p1: }
all:
  hosts: { a1: , w1: }
  children:
    zz: { hosts: { z1: } }
ungrouped:
  hosts: { u1: }
lone:
  hosts: { l1: , a1: }
";
        let inventory = parse(text);
        let names: Vec<&str> = inventory.hosts.iter().map(|h| h.name.as_str()).collect();
        assert_eq!(names, ["a1", "w1", "u1", "z1", "p1", "l1", "w2"]);
        assert_eq!(names_of(&inventory, &inventory.group_hosts("all")), names);
        let children = |name| -> Vec<&str> {
            inventory
                .group(name)
                .unwrap()
                .children
                .iter()
                .map(|&g| inventory.groups[g].name.as_str())
                .collect()
        };
        assert_eq!(children("all"), ["ungrouped", "zz", "prod", "lone"]);
        assert_eq!(
            names_of(&inventory, &inventory.group_hosts("prod")),
            ["p1", "w1", "w2"]
        );
    }

    #[test]
    fn group_priority_is_used_and_not_a_variable() {
        let text = "\
a:
  hosts: { h1: , h2: { ansible_group_priority: 7 } }
  vars: { x: a, ansible_group_priority: '10' }
b:
  hosts: { h1: , h2: }
  vars: { x: b }
c:
  hosts: { h3: }
  vars: { x: c, ansible_group_priority: 1.9 }
d:
  hosts: { h3: }
  vars: { x: d }
";
        let inventory = parse(text);
        assert_eq!(all_vars(&inventory, "h1"), json!({"x": "a"}));
        // A host's own `ansible_group_priority` is an ordinary variable.
        assert_eq!(
            all_vars(&inventory, "h2"),
            json!({"x": "a", "ansible_group_priority": 7})
        );
        // 1.9 counts as 1, as Python's int() makes it: a tie, so by name.
        assert_eq!(all_vars(&inventory, "h3"), json!({"x": "d"}));
        assert_eq!(
            error("a:\n  vars:\n    ansible_group_priority: high\n"),
            "ansible_group_priority must be a whole number, not \"high\"
  --> inventory.yml:3:29
  |
3 |     ansible_group_priority: high
  |                             ^"
        );
    }

    #[test]
    fn one_name_stands_for_a_mapping_of_it() {
        let text = "\
g:
  hosts: h1
  children: c
  vars: v
c:
  hosts: 'x[a:c]'
";
        let inventory = parse(text);
        assert_eq!(
            names_of(&inventory, &inventory.group_hosts("g")),
            ["h1", "xa", "xb", "xc"]
        );
        assert_eq!(all_vars(&inventory, "xb"), json!({"v": null}));
        assert!(error("g:\n  hosts: 12\n").starts_with("host name `12` reads as a number"));
        assert!(error("g:\n  vars: 12\n")
            .starts_with("g.vars: invalid type: integer `12`, expected a mapping, or one name"));
        assert!(error("g:\n  hosts: 'x[3:1]'\n").contains("--> inventory.yml:2:12\n"));
    }

    #[test]
    fn host_vars_go_to_a_group_of_the_same_name() {
        // Ansible sets a variable on the group when one has the name by
        // then; `db` is a group only after its host vars are read.
        let inventory =
            parse("web:\n  hosts:\n    web: { x: 1 }\n    w2:\n    db: { y: 2 }\ndb:\n  hosts:\n    d1:\n");
        assert_eq!(all_vars(&inventory, "w2"), json!({"x": 1}));
        assert_eq!(all_vars(&inventory, "web"), json!({"x": 1}));
        assert_eq!(all_vars(&inventory, "db"), json!({"x": 1, "y": 2}));
        assert_eq!(all_vars(&inventory, "d1"), json!({}));
    }

    mod never_panics {
        use super::*;
        use proptest::prelude::*;

        const FRAGMENTS: &[&str] = &[
            "all:",
            "  hosts:",
            "    children:",
            "  vars:",
            "web:",
            "web[01:03]:",
            "db-[a:c]",
            "[1:",
            "[x:1]",
            "]",
            "[",
            "{",
            "}",
            ":",
            ": ",
            "\n",
            "  ",
            "    ",
            "- ",
            "~",
            "'",
            "\"",
            "&a",
            "*b",
            "!",
            ",",
            "ünï",
            "ansible_port: 22",
            "[1:99999]",
            "[0:9][0:9][0:9]",
            "#",
            "null",
            "? ",
            "|",
            ">",
            "yes",
            "0755",
            "1:30",
            "2001-12-14 21:59:43.10 -5",
            "h:22",
            "[::1]:22",
            ".inf",
            "=",
            "hosts: one",
        ];

        fn yamlish() -> impl Strategy<Value = String> {
            prop::collection::vec(prop::sample::select(FRAGMENTS), 0..40)
                .prop_map(|parts| parts.concat())
        }

        /// Well-formed inventories (groups nested, repeated and looping,
        /// ranges good and bad), then perhaps broken by one inserted fragment.
        fn inventory_like() -> impl Strategy<Value = String> {
            let names = || {
                prop::sample::select(
                    &[
                        "all",
                        "web",
                        "db",
                        "prod",
                        "eu",
                        "us",
                        "canary",
                        "ungrouped",
                    ][..],
                )
            };
            let host = prop_oneof![
                8 => prop::sample::select(&["h1", "web[01:03]", "db-[a:c][1:2]", "h1: { v: host }", "h1:22", "'[::1]:2'", "x[y:B]"][..]),
                1 => prop::sample::select(&["h[1:x]", "x[3:1]", "y[1:"][..]),
            ];
            let hosts = prop::collection::vec(host, 0..4);
            let leaf = (names(), hosts.clone()).prop_map(|(name, hosts)| render(name, &hosts, &[]));
            let tree = leaf.prop_recursive(4, 24, 3, move |inner| {
                (names(), hosts.clone(), prop::collection::vec(inner, 0..3))
                    .prop_map(|(name, hosts, children)| render(name, &hosts, &children))
            });
            let fragment = prop::sample::select(FRAGMENTS).prop_filter("ascii", |f| f.is_ascii());
            (
                prop::collection::vec(tree, 1..4),
                any::<usize>(),
                prop::option::of(fragment),
            )
                .prop_map(|(groups, at, fragment)| {
                    let mut text = groups.concat();
                    if let Some(fragment) = fragment {
                        text.insert_str(at % (text.len() + 1), fragment);
                    }
                    text
                })
        }

        fn render(name: &str, hosts: &[&str], children: &[String]) -> String {
            let mut text = format!("{name}:\n  vars: {{ v: {name}, ansible_group_priority: 2 }}\n");
            if !hosts.is_empty() {
                text += "  hosts:\n";
                for host in hosts {
                    text += &format!("    {host}{}\n", if host.contains(": ") { "" } else { ":" });
                }
            }
            if !children.is_empty() {
                text += "  children:\n";
                for child in children {
                    for line in child.lines() {
                        text += &format!("    {line}\n");
                    }
                }
            }
            text
        }

        fn exercise(text: &str, pattern: &str) {
            if let Ok(inventory) = Inventory::parse(Path::new("fuzz.yml"), text) {
                for pattern in [pattern, "all", "*", "web*:&db:!x", "web[0]", "web[1:]"] {
                    if let Err(error) = inventory.select(pattern) {
                        assert!(error.offset <= pattern.len());
                    }
                }
            }
        }

        proptest! {
            #[test]
            fn on_arbitrary_text(text in any::<String>(), pattern in any::<String>()) {
                exercise(&text, &pattern);
            }

            #[test]
            fn on_yamlish_text(text in yamlish(), pattern in yamlish()) {
                exercise(&text, &pattern);
            }

            #[test]
            fn on_inventory_like_text(text in inventory_like(), pattern in yamlish()) {
                exercise(&text, &pattern);
            }
        }
    }
}
