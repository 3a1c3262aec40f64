//! Every expected host list here is what ansible-core 2.19's
//! `ansible -i INVENTORY PATTERN --list-hosts` prints, in its order, or an
//! error where Ansible warns that a term matches nothing.

use std::path::Path;

use super::*;

const FLEET: &str = "\
all:
  hosts:
    bastion:
  children:
    web:
      hosts:
        web[1:4].example.com:
    canary:
      hosts:
        web4.example.com:
    db:
      hosts:
        db[1:2].example.com:
    prod:
      children:
        web:
        db:
";

/// The inventory guide's example, where a group's own host comes before
/// its children's though the children are written first.
const DATACENTER: &str = "\
leafs:
  hosts:
    leaf01:
    leaf02:
spines:
  hosts:
    spine01:
    spine02:
network:
  children:
    leafs:
    spines:
webservers:
  hosts:
    webserver01:
    webserver02:
datacenter:
  children:
    network:
    webservers:
  hosts:
    spine02:
";

/// A host and a group both called `x`, and names with slashes and dots.
const SAME_NAMES: &str = "\
all:
  children:
    x:
      hosts:
        x:
        y:
    z:
      hosts:
        y:
    a/b:
      hosts:
        c/d:
        e.f:
";

fn parse(text: &str) -> Inventory {
    Inventory::parse(Path::new("inventory.yml"), text).unwrap()
}

fn names_in(text: &str, pattern: &str) -> Vec<String> {
    let inventory = parse(text);
    let hosts = inventory
        .select(pattern)
        .unwrap_or_else(|e| panic!("{pattern}: {e}"));
    hosts
        .into_iter()
        .map(|h| h.name.replace(".example.com", ""))
        .collect()
}

fn names(pattern: &str) -> Vec<String> {
    names_in(FLEET, pattern)
}

fn error_in(text: &str, pattern: &str) -> (usize, String) {
    let e = parse(text).select(pattern).unwrap_err();
    (e.offset, e.message)
}

fn error(pattern: &str) -> (usize, String) {
    error_in(FLEET, pattern)
}

#[test]
fn names_groups_and_all() {
    assert_eq!(names("web2.example.com"), ["web2"]);
    assert_eq!(names("db"), ["db1", "db2"]);
    assert_eq!(
        names("prod"),
        ["web1", "web2", "web3", "web4", "db1", "db2"]
    );
    let everyone = ["bastion", "web1", "web2", "web3", "web4", "db1", "db2"];
    assert_eq!(names("all"), everyone);
    assert_eq!(names("*"), everyone);
    assert_eq!(names("ungrouped"), ["bastion"]);
}

#[test]
fn unions_come_in_the_order_written() {
    assert_eq!(names("db,bastion"), ["db1", "db2", "bastion"]);
    assert_eq!(names("db:web1.example.com"), ["db1", "db2", "web1"]);
    assert_eq!(names(" db , db1.example.com "), ["db1", "db2"]);
    assert_eq!(
        names("web[0],db,web"),
        ["web1", "db1", "db2", "web2", "web3", "web4"]
    );
}

#[test]
fn a_groups_own_hosts_come_before_its_childrens() {
    let order = [
        "spine02",
        "webserver01",
        "webserver02",
        "leaf01",
        "leaf02",
        "spine01",
    ];
    assert_eq!(names_in(DATACENTER, "datacenter"), order);
    assert_eq!(names_in(DATACENTER, "datacenter[0]"), ["spine02"]);
    assert_eq!(names_in(DATACENTER, "datacenter[1]"), ["webserver01"]);
    assert_eq!(names_in(DATACENTER, "datacenter[-1]"), ["spine01"]);
    assert_eq!(
        names_in(DATACENTER, "datacenter[2:4]"),
        ["webserver02", "leaf01", "leaf02"]
    );
    assert_eq!(
        names_in(DATACENTER, "datacenter:&network"),
        ["spine02", "leaf01", "leaf02", "spine01"]
    );
    assert_eq!(
        names_in(DATACENTER, "webservers:datacenter:!leaf01"),
        ["webserver01", "webserver02", "spine02", "leaf02", "spine01"]
    );
}

#[test]
fn intersections_and_exclusions_keep_the_unions_order() {
    assert_eq!(names("prod:&web"), ["web1", "web2", "web3", "web4"]);
    assert_eq!(names("web:!canary"), ["web1", "web2", "web3"]);
    assert_eq!(names("all:!prod"), ["bastion"]);
    assert_eq!(names("web:&canary"), ["web4"]);
    assert_eq!(
        names("db:web:&prod:!web2.example.com"),
        ["db1", "db2", "web1", "web3", "web4"]
    );
}

#[test]
fn unions_then_intersections_then_exclusions_whatever_the_order() {
    assert_eq!(names("!canary:web"), ["web1", "web2", "web3"]);
    assert_eq!(names("&db:all:!db2.example.com"), ["db1"]);
    assert_eq!(names("web:!canary:canary"), ["web1", "web2", "web3"]);
}

#[test]
fn only_intersections_and_exclusions_start_from_all() {
    assert_eq!(names("!prod"), ["bastion"]);
    assert_eq!(names("&db"), ["db1", "db2"]);
}

#[test]
fn subscripts_count_in_the_terms_order() {
    assert_eq!(names("web[0]"), ["web1"]);
    assert_eq!(names("web[-1]"), ["web4"]);
    assert_eq!(names("web[1:2]"), ["web2", "web3"]);
    assert_eq!(names("web[1-2]"), ["web2", "web3"]);
    assert_eq!(names("web[2:]"), ["web3", "web4"]);
    assert_eq!(names("prod[4:9],bastion"), ["db1", "db2", "bastion"]);
    assert_eq!(names("web1.example.com[0]"), ["web1"]);
    assert_eq!(names("*.example.com[5]"), ["db2"]);
}

#[test]
fn a_range_ending_at_zero_is_one_index() {
    assert_eq!(names("web[1:0]"), ["web2"]);
    assert_eq!(names("web[3:0]"), ["web4"]);
    assert_eq!(names("web[0:0]"), ["web1"]);
    assert_eq!(names("web[2-0]"), ["web3"]);
    assert_eq!(
        error("web[4:0]"),
        (
            3,
            "in `web[4:0]`: index 4 is out of range: it matches 4 hosts".into()
        )
    );
}

#[test]
fn a_glob_subscript_counts_each_groups_hosts_then_the_names() {
    // `*` gives all's hosts, then each group's in turn (ungrouped, web, ...),
    // then every host by name; the index runs over all of those.
    assert_eq!(names("*[6]"), ["db2"]);
    assert_eq!(names("*[7]"), ["bastion"]);
    assert_eq!(names("*[8]"), ["web1"]);
    assert_eq!(names("*[15]"), ["web1"]);
    assert_eq!(names("*[-1]"), ["db2"]);
    assert_eq!(names_in(SAME_NAMES, "x*[2]"), ["x"]);
}

#[test]
fn subscripts_out_of_range_are_errors() {
    assert_eq!(
        error("db,web[7]"),
        (
            6,
            "in `web[7]`: index 7 is out of range: it matches 4 hosts".into()
        )
    );
    assert_eq!(
        error("web[-5]"),
        (
            3,
            "in `web[-5]`: index -5 is out of range: it matches 4 hosts".into()
        )
    );
    assert_eq!(
        error("web[99999999999999999999999999999999999999999]").1,
        "in `web[99999999999999999999999999999999999999999]`: index \
         170141183460469231731687303715884105727 is out of range: it matches 4 hosts"
    );
    // Ansible selects nothing here, silently; herd refuses.
    assert_eq!(
        error("web[7:9]"),
        (
            3,
            "in `web[7:9]`: the range selects no host: it matches 4 hosts".into()
        )
    );
    assert_eq!(
        error("web[2:1]").1,
        "in `web[2:1]`: the range selects no host: it matches 4 hosts"
    );
    assert_eq!(
        error("bastion[1:]").1,
        "in `bastion[1:]`: the range selects no host: it matches 1 host"
    );
}

#[test]
fn a_comma_anywhere_cuts_at_commas_only() {
    assert_eq!(
        error("web,db:!canary"),
        (4, "no host or group matches `db:!canary`".into())
    );
    assert_eq!(names("web:!canary"), ["web1", "web2", "web3"]);
    assert_eq!(
        names("web,,db,"),
        ["web1", "web2", "web3", "web4", "db1", "db2"]
    );
    assert_eq!(names(",db"), ["db1", "db2"]);
}

#[test]
fn whitespace_separates_terms_without_commas() {
    assert_eq!(names("db bastion"), ["db1", "db2", "bastion"]);
    assert_eq!(names("web !canary"), ["web1", "web2", "web3"]);
    assert_eq!(
        error("web, ! canary"),
        (
            6,
            "`!` must be followed by a host or group, with no space between".into()
        )
    );
}

#[test]
fn a_name_both_host_and_group_is_the_host_alone_unless_after_and_or_not() {
    assert_eq!(names_in(SAME_NAMES, "x"), ["x"]);
    assert_eq!(names_in(SAME_NAMES, "x,z"), ["x", "y"]);
    assert_eq!(names_in(SAME_NAMES, "z,x"), ["y", "x"]);
    assert_eq!(names_in(SAME_NAMES, "!x"), ["c/d", "e.f"]);
    assert_eq!(names_in(SAME_NAMES, "all:&x"), ["x", "y"]);
    assert_eq!(names_in(SAME_NAMES, "z:&x"), ["y"]);
    // With a subscript it is a pattern, not the host's name: the group.
    assert_eq!(names_in(SAME_NAMES, "x[1]"), ["y"]);
}

#[test]
fn globs_match_hosts_and_groups_slashes_included() {
    assert_eq!(names("*.example.com").len(), 6);
    assert_eq!(names("web?.example.com"), ["web1", "web2", "web3", "web4"]);
    assert_eq!(names("d*"), ["db1", "db2"]);
    assert_eq!(names("web[13].example.com"), ["web1", "web3"]);
    // `all` is a group like any other: `[!wd]*` matches it.
    assert_eq!(names("[!wd]*").len(), 7);
    // `ungrouped`, then `canary`, then `prod`.
    assert_eq!(
        names("[!wda]*"),
        ["bastion", "web4", "web1", "web2", "web3", "db1", "db2"]
    );
    assert_eq!(names("bas*"), ["bastion"]);
    assert_eq!(names_in(SAME_NAMES, "a?b"), ["c/d", "e.f"]);
    assert_eq!(names_in(SAME_NAMES, "*/*"), ["c/d", "e.f"]);
}

#[test]
fn regular_expressions_match_from_the_start_of_hosts_and_groups() {
    assert_eq!(names("~web"), ["web1", "web2", "web3", "web4"]);
    assert_eq!(names(r"~web[0-9]\."), ["web1", "web2", "web3", "web4"]);
    assert_eq!(names("~.*2"), ["web2", "db2"]);
    assert_eq!(names("~db|bastion"), ["db1", "db2", "bastion"]);
    assert_eq!(names("~(?i)WEB1"), ["web1"]);
    assert_eq!(names("web:!~.*[34]"), ["web1", "web2"]);
    assert_eq!(names_in(SAME_NAMES, "~x"), ["x", "y"]);
    assert_eq!(names_in(SAME_NAMES, "!~z"), ["x", "c/d", "e.f"]);
    // Not anchored at the end, but at the start.
    assert_eq!(error("~eb"), (0, "no host or group matches `~eb`".into()));
    // A subscript is part of the expression.
    assert_eq!(names("~db[12]"), ["db1", "db2"]);
    assert_eq!(
        error("web:~(x"),
        (4, "invalid regular expression `(x`: unclosed group".into())
    );
}

#[test]
fn unknown_terms_are_errors_at_their_offset() {
    assert_eq!(
        error("web:webz:!canary"),
        (
            4,
            "no host or group matches `webz`; did you mean `web`?".into()
        )
    );
    assert_eq!(
        error("web:!canray"),
        (
            5,
            "no host or group matches `canray`; did you mean `canary`?".into()
        )
    );
    assert_eq!(
        error("web:&zzz*"),
        (5, "no host or group matches `zzz*`".into())
    );
    assert_eq!(
        error("frontend"),
        (0, "no host or group matches `frontend`".into())
    );
    assert_eq!(
        error("db,web[1:2"),
        (
            3,
            "no host or group matches `web[1:2` (its `[` is not closed)".into()
        )
    );
    // Ansible's implicit localhost is not a host here.
    assert_eq!(
        error("localhost"),
        (0, "no host or group matches `localhost`".into())
    );
}

#[test]
fn malformed_patterns_are_errors_at_their_offset() {
    assert_eq!(error(""), (0, "the host pattern is empty".into()));
    assert_eq!(error("  ,  ").0, 0);
    assert_eq!(
        error("web:& "),
        (5, "`&` must be followed by a host or group".into())
    );
    assert_eq!(
        error("web:!"),
        (5, "`!` must be followed by a host or group".into())
    );
    assert_eq!(
        error("db:web[1:2"),
        (6, "unclosed `[` in host pattern".into())
    );
}

#[test]
fn an_empty_group_selects_nothing_without_error() {
    let inventory = parse("all:\n  children:\n    web:\n    db:\n      hosts:\n        db1:\n");
    assert!(inventory.select("web").unwrap().is_empty());
    assert!(inventory.select("web[0]").unwrap().is_empty());
    assert_eq!(inventory.select("web,db").unwrap().len(), 1);
}

mod limit_files {
    use super::*;

    fn limit(pattern: &str) -> Result<Vec<String>, (usize, String)> {
        parse(FLEET)
            .select_limit(pattern)
            .map(|hosts| {
                hosts
                    .into_iter()
                    .map(|h| h.name.replace(".example.com", ""))
                    .collect()
            })
            .map_err(|e| (e.offset, e.message))
    }

    #[test]
    fn each_line_is_one_term() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("retry");
        std::fs::write(&file, "web1.example.com\n\n  db  \r\n!db2.example.com\n").unwrap();
        let file = file.display();
        assert_eq!(limit(&format!("@{file}")).unwrap(), ["web1", "db1"]);
        assert_eq!(
            limit(&format!("bastion,@{file}")).unwrap(),
            ["bastion", "web1", "db1"]
        );
        // `!@...` is a name, not a file.
        assert_eq!(
            limit(&format!("all,!@{file}")).unwrap_err().1,
            format!("no host or group matches `@{file}`")
        );
    }

    #[test]
    fn a_line_is_not_cut_at_commas_or_colons() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("hosts");
        std::fs::write(&file, "db\nweb,bastion\n").unwrap();
        let file = file.display();
        assert_eq!(
            limit(&format!("db,@{file}")).unwrap_err(),
            (
                3,
                format!("{file}, line 2: no host or group matches `web,bastion`")
            )
        );
    }

    #[test]
    fn missing_empty_and_directory_files_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing");
        assert_eq!(
            limit(&format!("web,@{}", missing.display())).unwrap_err(),
            (
                4,
                format!(
                    "cannot read limit file `{}`: No such file or directory (os error 2)",
                    missing.display()
                )
            )
        );
        let empty = dir.path().join("empty");
        std::fs::write(&empty, "\n \n").unwrap();
        // Ansible would take an empty file for `all`.
        assert_eq!(
            limit(&format!("@{}", empty.display())).unwrap_err(),
            (
                0,
                format!("limit file `{}` names no host or group", empty.display())
            )
        );
        assert_eq!(
            limit(&format!("@{}", dir.path().display())).unwrap_err().1,
            format!(
                "cannot read limit file `{}`: it is a directory",
                dir.path().display()
            )
        );
        // A device that never ends and a fifo that would block are refused
        // unopened.
        let fifo = dir.path().join("fifo");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        assert!(made.is_ok_and(|s| s.success()));
        for path in [std::path::Path::new("/dev/zero"), fifo.as_path()] {
            assert_eq!(
                limit(&format!("@{}", path.display())).unwrap_err().1,
                format!(
                    "cannot read limit file `{}`: it is not a regular file",
                    path.display()
                )
            );
        }
    }

    #[test]
    fn a_playbooks_hosts_take_no_files() {
        assert_eq!(
            parse(FLEET).select("@hosts").unwrap_err().message,
            "no host or group matches `@hosts`"
        );
    }
}

#[test]
fn edit_distance_counts_characters() {
    assert_eq!(edit_distance("web", "webz"), 1);
    assert_eq!(edit_distance("canary", "canray"), 2);
    assert_eq!(edit_distance("", "ab"), 2);
    assert_eq!(edit_distance("ünï", "uni"), 2);
}
