//! herd's reading of client configs, held against `ssh -G` itself: for a
//! corpus of configs of the kinds people write, every host resolves to the
//! same HostName, User, Port, IdentityFile, ProxyJump and UserKnownHostsFile.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::expand::{self, Tokens};
use super::*;

/// The home directory `ssh` uses (the password database's, not `$HOME`).
fn account_home() -> PathBuf {
    // SAFETY: getpwuid(3) returns static storage or null; copied out at once.
    let dir = unsafe {
        let entry = libc::getpwuid(libc::getuid());
        assert!(!entry.is_null(), "no password entry for this account");
        std::ffi::CStr::from_ptr((*entry).pw_dir)
            .to_string_lossy()
            .into_owned()
    };
    PathBuf::from(dir)
}

/// A directory under `~/.ssh` for relative `Include`s, removed on drop
/// (with `~/.ssh` itself when the test created it).
struct SshDirFiles {
    dir: PathBuf,
    created_ssh_dir: Option<PathBuf>,
}

impl SshDirFiles {
    fn new(home: &Path) -> SshDirFiles {
        let ssh_dir = home.join(".ssh");
        let created_ssh_dir = (!ssh_dir.exists()).then(|| ssh_dir.clone());
        std::fs::create_dir_all(&ssh_dir).unwrap();
        let dir = ssh_dir.join(format!("herd-config-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        SshDirFiles {
            dir,
            created_ssh_dir,
        }
    }
}

impl Drop for SshDirFiles {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
        if let Some(dir) = &self.created_ssh_dir {
            let _ = std::fs::remove_dir(dir);
        }
    }
}

/// `ssh -G -F config host`: each keyword with its values (one per line).
fn ssh_g(config: &Path, host: &str) -> BTreeMap<String, Vec<String>> {
    let output = Command::new("ssh")
        .arg("-G")
        .arg("-F")
        .arg(config)
        .arg(host)
        .output()
        .expect("cannot run ssh -G (is the OpenSSH client installed?)");
    assert!(
        output.status.success(),
        "ssh -G -F {} {host} failed: {}",
        config.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    let mut map: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        if let Some((key, value)) = line.split_once(' ') {
            // `ssh -G` shows a one-hop jump to an IP address as `[IP]`;
            // the brackets are display only.
            let value = match key {
                "proxyjump" if !value.contains(',') => value.replace(['[', ']'], ""),
                _ => value.to_string(),
            };
            map.entry(key.to_string()).or_default().push(value);
        }
    }
    map
}

/// What herd resolves, in the shape `ssh -G` prints it (defaults filled in
/// as ssh fills them, known_hosts paths expanded as ssh expands them).
fn herd_view(config: &SshConfig, home: &Path, host: &str) -> BTreeMap<String, Vec<String>> {
    let found = config
        .resolve(host)
        .unwrap_or_else(|e| panic!("{host}: {}", e.message));
    let mut tokens = Tokens::local(home, host);
    tokens.host = found
        .hostname
        .clone()
        .unwrap_or_else(|| host.to_lowercase());
    tokens.port = found.port.unwrap_or(22);
    if let Some(user) = &found.user {
        tokens.user = user.clone();
    }
    let mut map = BTreeMap::new();
    map.insert("hostname".into(), vec![tokens.host.clone()]);
    map.insert("user".into(), vec![tokens.user.clone()]);
    map.insert("port".into(), vec![tokens.port.to_string()]);
    let identities = if found.identity_files.is_empty() {
        [
            "id_rsa",
            "id_ecdsa",
            "id_ecdsa_sk",
            "id_ed25519",
            "id_ed25519_sk",
            "id_xmss",
            "id_dsa",
        ]
        .iter()
        .map(|name| format!("~/.ssh/{name}"))
        .collect()
    } else {
        found.identity_files.clone()
    };
    map.insert("identityfile".into(), identities);
    if let Some(jump) = found.proxy_jump.filter(|j| j != "none") {
        map.insert("proxyjump".into(), vec![jump]);
    }
    if let Some((command, _)) = found.proxy_command {
        map.insert("proxycommand".into(), vec![command]);
    }
    let known = found
        .user_known_hosts_files
        .unwrap_or_else(|| vec!["~/.ssh/known_hosts".into(), "~/.ssh/known_hosts2".into()]);
    let known: Vec<String> = known.iter().map(|k| expand::expand(k, &tokens)).collect();
    map.insert("userknownhostsfile".into(), vec![known.join(" ")]);
    map
}

const FIELDS: [&str; 7] = [
    "hostname",
    "user",
    "port",
    "identityfile",
    "proxyjump",
    "proxycommand",
    "userknownhostsfile",
];

/// One config of the corpus: what it shows, its files (the first is the
/// config itself) and the hosts to resolve.
struct Case {
    title: &'static str,
    files: Vec<(&'static str, &'static str)>,
    hosts: Vec<&'static str>,
}

/// The corpus. In file texts, `{dir}` is the case's absolute directory and
/// `{rel}` the same directory relative to `~/.ssh`.
fn corpus() -> Vec<Case> {
    vec![
        Case {
            title: "global options first, Include with globs, first value wins",
            files: vec![
                (
                    "config",
                    "# Global options before any Host, as generated configs have them\n\
                     IdentityFile ~/.ssh/id_global\n\
                     ServerAliveInterval 30\n\
                     Include {rel}/conf.d/*.conf\n\
                     Include ~/.ssh/{rel}/missing-*.conf\n\
                     AddKeysToAgent yes\n\
                     \n\
                     Host bastion\n\
                     \x20 HostName 203.0.113.10\n\
                     \x20 User ops\n\
                     \x20 Port 2201\n\
                     \n\
                     Host web? web-* !web-legacy\n\
                     \x20 HostName %h.internal.example.com\n\
                     \x20 ProxyJump bastion\n\
                     \x20 IdentityFile ~/.ssh/id_%h_%r\n\
                     \n\
                     Host *.example.com\n\
                     \x20 User deploy\n\
                     \x20 UserKnownHostsFile ~/.ssh/known_hosts.d/%h %d/.ssh/known_hosts_shared\n\
                     \n\
                     Match host *.internal.example.com\n\
                     \x20 Port 2222\n\
                     \n\
                     Host *\n\
                     \x20 User fallback\n\
                     \x20 IdentityFile %d/.ssh/id_%u\n",
                ),
                (
                    "conf.d/10-orbstack.conf",
                    "Host orb\n\
                     \x20 HostName 127.0.0.1\n\
                     \x20 Port 32222\n\
                     \x20 User default\n\
                     \x20 IdentityFile ~/.orbstack/ssh/id_ed25519\n\
                     \x20 ProxyCommand none\n\
                     \x20 ProxyJump never-used\n\
                     Host web1\n\
                     \x20 User from-include\n",
                ),
                (
                    "conf.d/20-db.conf",
                    "Match originalhost db*\n\
                     \x20 HostName %h.db.example.com\n\
                     \x20 ProxyJump ssh://jump@203.0.113.11:2022\n",
                ),
                ("conf.d/ignored.txt", "Host *\n  User never\n"),
            ],
            hosts: vec![
                "bastion",
                "web1",
                "web-a",
                "web-legacy",
                "webx.example.com",
                "orb",
                "db1",
                "DB2",
                "random",
                "WEB1",
                "Bastion",
            ],
        },
        Case {
            title: "Key=Value, keyword case, quotes, comments, Match, ProxyCommand first",
            files: vec![(
                "config",
                "Port=2022\n\
                 user = alice\n\
                 IDENTITYFILE \"/keys/with space/id\"\n\
                 Host \"alpha\" beta\n\
                 \x20 HostName=10.1.0.1 # trailing comment\n\
                 \x20 ProxyJump none\n\
                 Host alpha\n\
                 \x20 ProxyJump never-used\n\
                 Host gamma\n\
                 \x20 ProxyCommand ssh -W %h:%p jump\n\
                 \x20 ProxyJump ignored\n\
                 Match user alice host gamma\n\
                 \x20 UserKnownHostsFile /kh/%C %k-%n-%i-%L-%l-%u-%r-%p-%%\n\
                 Match !host 10.1.0.1 originalhost beta,delta\n\
                 \x20 User bob\n\
                 \x20 HostKeyAlias delta-key\n\
                 Match all\n\
                 \x20 IdentityFile \"~/.ssh/id %r\"\n\
                 \x20 IdentityFile /keys/with\\ space/id\n",
            )],
            hosts: vec!["alpha", "beta", "gamma", "delta", "epsilon"],
        },
        Case {
            title: "Include inside Host blocks, absolute and nested",
            files: vec![
                (
                    "config",
                    "Host inner*\n\
                     \x20 Include {dir}/inner.conf\n\
                     Host other\n\
                     \x20 Include {dir}/other.conf\n\
                     Host *\n\
                     \x20 Port 2200\n\
                     \x20 User last\n",
                ),
                (
                    "inner.conf",
                    "User inner-user\n\
                     Host inner2\n\
                     \x20 Port 2300\n\
                     \x20 Include {rel}/nested.conf\n",
                ),
                (
                    "nested.conf",
                    "HostName nested.example.net\nProxyJump a@j1:22,j2\n",
                ),
                (
                    "other.conf",
                    "Host *\n  HostName from-other\n  User other-user\n",
                ),
            ],
            hosts: vec!["inner1", "inner2", "other", "outsider"],
        },
        Case {
            title: "tabs, spacing around =, several files in one Include, Match on users",
            files: vec![
                (
                    "config",
                    "\tHOSTNAME\t=\tshared.example.net\n\
                     Include {dir}/b.conf {dir}/a.conf {dir}/none-*.conf\n\
                     Match localuser root,!nobody user deploy\n\
                     \tIdentityFile\t\"/keys/deploy \\\"quoted\\\"\"\n\
                     Match !originalhost x* localuser *\n\
                     \tPort = 2424\n\
                     Host x?\n\
                     \tUser=deploy\n\
                     \tPort\t2525\n",
                ),
                ("a.conf", "Host xa\n  UserKnownHostsFile %d/a-%n\n"),
                ("b.conf", "Host xb\n  UserKnownHostsFile %d/b-%n\n"),
            ],
            hosts: vec!["xa", "xb", "xyz", "other"],
        },
        Case {
            title: "Host with negation only, wildcards, and no match at all",
            files: vec![(
                "config",
                "Host *.CORP\n\
                 \x20 HostName Upper-%h\n\
                 Host !*.corp\n\
                 \x20 User negated-only\n\
                 Host *.corp !secret.corp\n\
                 \x20 User corp\n\
                 \x20 UserKnownHostsFile /dev/null\n\
                 Host 10.0.?.*\n\
                 \x20 Port 2345\n",
            )],
            hosts: vec![
                "a.corp",
                "secret.corp",
                "10.0.1.7",
                "10.0.12.7",
                "A.Corp",
                "B.CORP",
                "Secret.CORP",
            ],
        },
        Case {
            title: "Match exec (run only when the criteria before it hold), quoted lists, tokens",
            files: vec![(
                "config",
                "Match host=\"c1,d1\"\n\
                 \x20 User listed\n\
                 Match originalhost = e1 host =e1\n\
                 \x20 Port 2600\n\
                 Host c1\n\
                 \x20 HostName %%h-%h-%%x\n\
                 Match originalhost c1 exec \"test -d '{dir}'\"\n\
                 \x20 Port 2201\n\
                 Match originalhost c1 exec \"test -e '{dir}/absent-%n'\"\n\
                 \x20 IdentityFile /k/never\n\
                 Match exec \"test %n = d1 && test %p = 22 && test %r = listed\"\n\
                 \x20 IdentityFile /k/exec-%n\n\
                 Match !exec \"exit 3\" originalhost e1\n\
                 \x20 UserKnownHostsFile /kh/not-exec\n\
                 Match exec=\"test '%h' = '%%h-c1-%%x'\"\n\
                 \x20 ProxyJump jump-%h\n\
                 Match canonical\n\
                 \x20 User canonical-never\n\
                 Match canonical all\n\
                 \x20 Port 2999\n",
            )],
            hosts: vec!["c1", "d1", "e1", "f1", "C1", "E1"],
        },
        Case {
            title: "Match final: a second pass that sees the HostName, and Match canonical in it",
            files: vec![(
                "config",
                "Host a\n\
                 \x20 HostName real.example\n\
                 Match final host real.example\n\
                 \x20 User final-user\n\
                 Host real.example\n\
                 \x20 Port 3000\n\
                 Match final originalhost a\n\
                 \x20 IdentityFile /k/orig\n\
                 Match final host a\n\
                 \x20 IdentityFile /k/host-a\n\
                 Match canonical exec \"test %h = real.example\"\n\
                 \x20 UserKnownHostsFile /kh/canonical\n\
                 Match final\n\
                 \x20 HostName too-late\n\
                 \x20 ProxyJump j-%h\n\
                 Host b\n\
                 \x20 Port 2201\n",
            )],
            hosts: vec!["a", "b", "real.example"],
        },
    ]
}

#[test]
fn herd_resolves_each_host_as_ssh_dash_g_does() {
    let home = account_home();
    let scratch = SshDirFiles::new(&home);
    let rel = scratch
        .dir
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let mut compared = 0;
    for (
        index,
        Case {
            title,
            files,
            hosts,
        },
    ) in corpus().into_iter().enumerate()
    {
        let dir = scratch.dir.join(format!("case{index}"));
        let rel = format!("{rel}/case{index}");
        for (name, text) in &files {
            let path = dir.join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            let text = text
                .replace("{dir}", &dir.to_string_lossy())
                .replace("{rel}", &rel);
            std::fs::write(&path, text).unwrap();
        }
        let config_path = dir.join(files[0].0);
        let config = SshConfig::load(&config_path, &home)
            .unwrap_or_else(|e| panic!("{title}: {}", e.message));
        for host in hosts {
            let ssh = ssh_g(&config_path, host);
            let herd = herd_view(&config, &home, host);
            for field in FIELDS {
                assert_eq!(
                    herd.get(field),
                    ssh.get(field),
                    "{title}: `{field}` of {host} differs from ssh -G\n{}",
                    std::fs::read_to_string(&config_path).unwrap()
                );
                compared += 1;
            }
        }
    }
    assert!(compared > 100);
}

fn load_text(text: &str) -> Result<SshConfig, SshConfigError> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config");
    std::fs::write(&path, text).unwrap();
    SshConfig::load(&path, dir.path()).map_err(|mut e| {
        e.file = PathBuf::from("config");
        e
    })
}

fn error_of(text: &str) -> (usize, usize, String) {
    let e = load_text(text).unwrap_err();
    (e.line, e.column, e.message)
}

#[test]
fn lines_herd_cannot_read_are_named_by_line_and_column() {
    assert_eq!(
        error_of("Host a\n  Port twenty\n"),
        (2, 8, "bad port `twenty`".into())
    );
    assert_eq!(
        error_of("User\n"),
        (1, 1, "no argument after keyword `User`".into())
    );
    assert_eq!(
        error_of("IdentityFile \"/a b\n"),
        (1, 14, "unterminated quote".into())
    );
    assert_eq!(
        error_of("IdentityFile /a /b\n"),
        (1, 17, "`IdentityFile` takes one argument".into())
    );
    assert_eq!(
        error_of("\nMatch localnetwork 10.0.0.0/8\n"),
        (
            2,
            7,
            "herd cannot evaluate `Match localnetwork`; use Host or Match host/user".into()
        )
    );
    // ssh fails on any token but `%%` and `%h` in HostName.
    assert_eq!(
        error_of("Host a\n  HostName %%h-%h-%%%n\n"),
        (2, 12, "unknown token `%n` in `%%h-%h-%%%n`".into())
    );
    assert_eq!(
        error_of("Host a\n  HostName a%\n"),
        (2, 12, "`%` at the end of `a%`".into())
    );
    assert_eq!(
        error_of("Match host x exec \"test -e /k/%i\"\n"),
        (1, 14, "unknown token `%i` in `test -e /k/%i`".into())
    );
    assert_eq!(
        error_of("Match exec\n"),
        (1, 7, "`Match exec` needs an argument".into())
    );
    assert_eq!(
        error_of("Match all host x\n"),
        (1, 7, "`Match all` must stand alone".into())
    );
    assert_eq!(
        error_of("IdentityFile ~/.ssh/%j\n"),
        (1, 14, "unknown token `%j` in `~/.ssh/%j`".into())
    );
}

#[test]
fn an_include_nested_in_itself_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("loop");
    std::fs::write(&path, format!("Include {}\n", path.display())).unwrap();
    let error = SshConfig::load(&path, dir.path()).unwrap_err();
    assert_eq!(error.message, "too many nested Include files");
    assert_eq!(error.line, 1);
}

#[test]
fn a_config_that_is_not_utf8_is_named_with_the_byte_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config");
    std::fs::write(&path, b"Host a\n  User b\xe9b\n").unwrap();
    let error = SshConfig::load(&path, dir.path()).unwrap_err();
    assert_eq!(
        (error.file.as_path(), error.line, error.message.as_str()),
        (
            path.as_path(),
            0,
            "it is not UTF-8 text: the byte at offset 15 (line 2) is not valid UTF-8"
        )
    );
    let included = dir.path().join("included.conf");
    std::fs::rename(&path, &included).unwrap();
    std::fs::write(&path, format!("\nInclude {}\n", included.display())).unwrap();
    let error = SshConfig::load(&path, dir.path()).unwrap_err();
    assert_eq!(
        (error.line, error.column, error.message),
        (
            2,
            9,
            format!(
                "cannot read {}: it is not UTF-8 text: the byte at offset 15 (line 2) is not valid UTF-8",
                included.display()
            )
        )
    );
}

#[test]
fn match_exec_expands_tokens_as_ssh_does() {
    let dir = tempfile::tempdir().unwrap();
    let config = |out: &str| {
        let path = dir.path().join(format!("config-{out}"));
        std::fs::write(
            &path,
            format!(
                "Host t1\n  HostName real-%h\n  Port 2345\n  User bob\n\
                 Match exec \"echo %C %L %d %h %l %n %p %r %u %% > '{}'\"\n",
                dir.path().join(out).display()
            ),
        )
        .unwrap();
        path
    };
    let ssh_config = config("ssh.txt");
    ssh_g(&ssh_config, "t1");
    let herd_config = SshConfig::load(&config("herd.txt"), &account_home()).unwrap();
    herd_config.resolve("t1").unwrap();
    let ssh = std::fs::read_to_string(dir.path().join("ssh.txt")).unwrap();
    let herd = std::fs::read_to_string(dir.path().join("herd.txt")).unwrap();
    assert_eq!(herd, ssh);
    assert!(
        ssh.contains(" real-t1 ") && ssh.contains(" t1 2345 bob "),
        "{ssh}"
    );
}

#[test]
fn match_exec_runs_only_when_the_criteria_before_it_hold() {
    let dir = tempfile::tempdir().unwrap();
    let ran = |name: &str| dir.path().join(format!("ran-{name}"));
    let text = format!(
        "Match host nomatch exec \"touch '{}'\"\n  User x\n\
         Match exec \"touch '{}'\" host nomatch\n  User y\n",
        ran("skipped").display(),
        ran("first").display(),
    );
    let config = load_text(&text).unwrap();
    let found = config.resolve("web1").unwrap();
    assert_eq!(found.user, None);
    assert!(
        !ran("skipped").exists(),
        "an exec after a failed criterion ran"
    );
    assert!(
        ran("first").exists(),
        "an exec before the criteria did not run"
    );
}

#[test]
fn a_match_exec_that_hangs_is_stopped_and_named_at_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("pid");
    let text = format!(
        "Host *\n  Port 2200\nMatch exec \"sleep 60 & echo $! > '{}'; wait\"\n  User never\n",
        pid_file.display()
    );
    let config = load_text(&text).unwrap();
    let started = std::time::Instant::now();
    let error = config.resolve("web1").unwrap_err();
    let waited = started.elapsed();
    assert_eq!(
        (error.line, error.column, error.message.as_str()),
        (
            3,
            7,
            format!(
                "the `Match exec` command `sleep 60 & echo $! > '{}'; wait` did not finish within 10s",
                pid_file.display()
            )
            .as_str()
        )
    );
    assert!(
        waited >= EXEC_TIMEOUT && waited < EXEC_TIMEOUT * 2,
        "{waited:?}"
    );
    // The command's own children are stopped too.
    let pid: i32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while Path::new(&format!("/proc/{pid}")).exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(
        !Path::new(&format!("/proc/{pid}")).exists(),
        "the sleep the command started still runs"
    );
}

#[test]
fn match_exec_does_not_run_with_a_token_that_stands_for_a_name_ssh_refuses() {
    let dir = tempfile::tempdir().unwrap();
    let canary = dir.path().join("canary");
    let log = dir.path().join("log");
    let config = load_text(&format!(
        "Host *\n  Port 2200\nMatch host * exec \"echo %h %n >> '{}'\"\n  User x\n",
        log.display()
    ))
    .unwrap();
    let name = format!("evil$(touch {})", canary.display());
    let error = config.resolve(&name).unwrap_err();
    assert_eq!(
        (error.line, error.column, error.message),
        (
            3,
            14,
            format!(
                "`%h` stands for `{name}`, which has `$`: herd does not run the `Match exec` command `echo %h %n >> '{}'` with it (ssh refuses such a name too)",
                log.display()
            )
        )
    );
    assert!(!canary.exists(), "the name reached the shell");
    assert!(!log.exists(), "the command ran");
    // Ordinary names, IPv6 literals and bracketed forms run it.
    for name in [
        "web-01.example.com",
        "db_2",
        "10.0.0.5",
        "fe80::1",
        "[fe80::1]:2222",
    ] {
        assert_eq!(config.resolve(name).unwrap().user.as_deref(), Some("x"));
    }
    let logged = std::fs::read_to_string(&log).unwrap();
    assert_eq!(logged.lines().count(), 5, "{logged}");
}

#[test]
fn a_host_or_user_name_ssh_refuses_in_the_config_is_named_at_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let canary = dir.path().join("canary");
    let text = format!(
        "Host web1\n  HostName \"a;touch {canary}\"\nHost db1\n  User \"$(touch {canary})\"\n\
         Host gw1\n  ProxyJump \"o;p@gw\"\nHost *\n  HostName %h.internal\n\
         Match exec \"touch {canary}-%h\"\n",
        canary = canary.display()
    );
    let config = load_text(&text).unwrap();
    let e = config.resolve("web1").unwrap_err();
    assert_eq!(
        (e.line, e.column, e.message),
        (
            2,
            3,
            format!(
                "HostName: hostname `a;touch {}` contains invalid characters: it has `;`; ssh refuses it too",
                canary.display()
            )
        )
    );
    let e = config.resolve("db1").unwrap_err();
    assert_eq!(
        (e.line, e.column, e.message),
        (
            4,
            3,
            format!(
                "User: remote username `$(touch {})` contains invalid characters: it has `(`; ssh refuses it too",
                canary.display()
            )
        )
    );
    let e = config.resolve("gw1").unwrap_err();
    assert_eq!(
        (e.line, e.column, e.message.as_str()),
        (
            6,
            3,
            "ProxyJump: remote username `o;p` contains invalid characters: it has `;`; ssh refuses it too"
        )
    );
    assert!(!canary.exists());
    // The `%h` a HostName expands is the host's own, checked as given.
    assert_eq!(
        config.resolve("app.corp").unwrap().hostname.as_deref(),
        Some("app.corp.internal")
    );
}
