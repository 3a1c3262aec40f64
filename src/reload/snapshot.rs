//! What the remote side sends for discovery: one round trip that dumps the
//! pidfile, systemd's MainPID and every process (pid, ppid, start time,
//! state, command line) from `/proc`. The controller parses it here, so the
//! decisions are made on data that unit tests can write by hand.

use std::collections::BTreeMap;

use super::server::AppServer;

/// One process as `/proc` describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Process {
    pub pid: u32,
    pub ppid: u32,
    /// Clock ticks after boot (field 22 of /proc/PID/stat); with the pid it
    /// names one process, even after the pid is reused.
    pub start_time: u64,
    /// `R`, `S`, `Z`...
    pub state: char,
    /// Arguments joined by spaces (the process title under setproctitle).
    pub cmdline: String,
    /// In the cgroup of the unit looked at.
    pub in_unit: bool,
}

impl Process {
    pub fn is_zombie(&self) -> bool {
        self.state == 'Z' || self.state == 'X'
    }
}

/// Everything discovery needs from one host, at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    pub processes: BTreeMap<u32, Process>,
    /// The pidfile's content, when a pidfile was asked for and exists.
    pub pidfile: Option<String>,
    /// What systemd said about the unit (`rc=N`, then its answer), when
    /// it was asked.
    pub manager: Option<String>,
    /// What the container engine said about the container, when asked.
    pub container: Option<String>,
}

/// Markers between the sections of the dump.
const PIDFILE: &str = "--herd pidfile";
const UNIT: &str = "--herd unit";
const PROCS: &str = "--herd procs";
const CONTAINER: &str = super::container::SECTION;

/// What to wait for on the host before taking the snapshot: master `pid`
/// with exactly `wanted` children, none of them in `old`, or the master gone.
/// The wait only saves round trips: the controller proves the reload on the
/// snapshot that follows, whatever ended the wait.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WaitFor {
    pub pid: u32,
    pub old: Vec<u32>,
    pub wanted: usize,
    /// Looks at the host, [`WAIT_INTERVAL`] apart, before giving up.
    pub looks: u32,
}

/// Time between two looks of a [`WaitFor`] on the host: tight enough that a
/// reload is seen within a few tens of milliseconds, loose enough that the
/// `sleep` it costs does not compete with the workers booting.
pub const WAIT_INTERVAL: std::time::Duration = std::time::Duration::from_millis(40);

impl WaitFor {
    /// Reads the master's children from the kernel's list (shell builtins
    /// only); where the list is missing or empty the wait ends at once.
    fn script(&self) -> String {
        let old: String = self.old.iter().map(|w| format!(" {w}")).collect();
        format!(
            "m={pid}; old='{old} '; i=0\n\
             while [ $i -lt {looks} ]; do \
               k=; read -r k 2>/dev/null < /proc/$m/task/$m/children; [ -n \"$k\" ] || break; \
               c=0; left=; for w in $k; do c=$((c+1)); case \"$old\" in *\" $w \"*) left=1;; esac; done; \
               [ -z \"$left\" ] && [ $c -eq {wanted} ] && break; \
               sleep {interval} 2>/dev/null || break; i=$((i+1)); \
             done\n",
            pid = self.pid,
            looks = self.looks,
            wanted = self.wanted,
            interval = WAIT_INTERVAL.as_secs_f64(),
        )
    }
}

/// What one snapshot looks at.
#[derive(Debug, Clone)]
pub struct Look<'a> {
    pub server: &'a AppServer,
    /// The pidfile, shell-quoted.
    pub pidfile: Option<String>,
    /// The systemd unit whose cgroup marks its processes.
    pub unit: Option<UnitLook>,
    /// The command that asks systemd about the unit (`systemctl show`),
    /// when herd may ask; its answer decides the pid to look at.
    pub query: Option<String>,
    /// The lines that ask the container engine about the container and
    /// set `want` to its PID 1 (see [`super::container::query`]).
    pub container: Option<String>,
    /// Wait on the host first (see [`WaitFor`]).
    pub wait: Option<&'a WaitFor>,
}

/// Which processes belong to a unit: those in a cgroup of its name, of
/// the right manager.
#[derive(Debug, Clone)]
pub struct UnitLook {
    /// The unit's name, shell-quoted.
    pub name: String,
    /// A user unit: the shell words that give the uid of the account whose
    /// manager runs it (`$(id -u app)`); only its processes count, not a
    /// same-named unit of another account. `None`: a system unit, whose
    /// cgroups are outside every user manager's (`user@UID.service`).
    pub owner: Option<String>,
}

/// The shell script that prints a snapshot.
pub fn script(look: &Look) -> String {
    let mut script = look.wait.map(WaitFor::script).unwrap_or_default();
    // `want` is the pid the pidfile or systemd names (or the master waited
    // for): discovery needs only it, its parent, its children and theirs (a
    // USR2 master's workers). With a unit, the pidfile is where the master
    // may be found when the unit is not active: `also` is read as well.
    script.push_str("want= also= u=\n");
    if let Some(pidfile) = &look.pidfile {
        let into = if look.unit.is_some() { "also" } else { "want" };
        // Its first line, of 64 bytes at most, from a regular file only: a
        // fifo or a device would never end. What else is there is said in
        // `<...>`, which no pid reads as.
        script.push_str(&format!(
            "echo '{PIDFILE}'; if [ ! -e {pidfile} ]; then :; \
             elif [ ! -f {pidfile} ]; then {into}='<not a regular file>'; \
             elif [ ! -r {pidfile} ]; then {into}='<not readable>'; \
             else {into}=$(head -c 64 {pidfile} 2>/dev/null | head -n 1); fi; echo \"${into}\"\n"
        ));
    }
    match &look.unit {
        Some(UnitLook {
            name,
            owner: Some(owner),
        }) => script.push_str(&format!("u={name} uo={owner}; [ -n \"$uo\" ] || uo=none\n")),
        Some(UnitLook { name, owner: None }) => script.push_str(&format!("u={name} uo=\n")),
        None => {}
    }
    if let Some(query) = &look.query {
        // The answer, then the main pid of an active unit as `want`.
        script.push_str(&format!(
            "echo '{UNIT}'; q=$({query} 2>&1); echo \"rc=$?\"; printf '%s\\n' \"$q\"\n\
             mp= as=; while IFS= read -r l; do case \"$l\" in \
               MainPID=*) mp=${{l#MainPID=}};; ActiveState=*) as=${{l#ActiveState=}};; esac; \
             done <<HERD_EOF\n$q\nHERD_EOF\n\
             case \"$as\" in active|reloading) [ \"$mp\" != 0 ] && want=$mp;; esac\n"
        ));
    }
    if let Some(container) = &look.container {
        script.push_str(container);
    }
    if let Some(wait) = look.wait {
        script.push_str(&format!("want={}\n", wait.pid));
    }
    // One line per process: the stat line (read by the shell itself, no
    // process started), a tab, the command line with NULs as spaces (which
    // costs a process), a tab, and `1` when the process is in the unit's
    // cgroup. With a pid named and the kernel's children lists, only that
    // family is read. Otherwise every process's stat line, and the command
    // lines of the named pid's family, or without one, of those whose name
    // says they can be the server, and of the unit's processes. The
    // parent's command line tells a worker (its parent is the server) from a
    // master.
    script.push_str(&format!(
        "echo '{PROCS}'\n\
         case \"$want\" in ''|*[!0-9]*) want=;; esac\n\
         line() {{ read -r s 2>/dev/null < \"/proc/$1/stat\" || return 0; c=; \
           [ -n \"$2\" ] && c=$(tr '\\000\\n\\t' '   ' 2>/dev/null < \"/proc/$1/cmdline\"); \
           printf '%s\\t%s\\t%s\\n' \"$s\" \"$c\" \"$3\"; }}\n\
         children() {{ for t in \"/proc/$1/task/\"*; do k=; read -r k 2>/dev/null < \"$t/children\"; printf '%s ' $k; done; }}\n\
         up=; if [ -n \"$want\" ] && read -r s 2>/dev/null < \"/proc/$want/stat\"; then \
           r=${{s##*) }}; r=${{r#* }}; up=${{r%% *}}; fi\n\
         if [ -n \"$want\" ] && [ -r \"/proc/$$/task/$$/children\" ]; then \
           kids=$(children \"$want\"); grand=; for k in $kids; do grand=\"$grand $(children \"$k\")\"; done; \
           [ -n \"$up\" ] && line \"$up\" 1; line \"$want\" 1; \
           for k in $kids $grand; do line \"$k\" 1; done; \
         else kids=' '; cd /proc && for p in [0-9]*; do \
           read -r s < \"$p/stat\" 2>/dev/null || continue; need=; inu=; \
           r=${{s##*) }}; r=${{r#* }}; pp=${{r%% *}}; \
           if [ -n \"$u\" ]; then while IFS= read -r g; do \
             case \"$g\" in *\"/$u\"|*\"/$u/\"*) ;; *) continue;; esac; \
             [ -z \"$uo\" ] && case \"$g\" in */user@*) continue;; esac; \
             inu=1; break; done 2>/dev/null < \"$p/cgroup\"; \
             if [ -n \"$inu\" ] && [ -n \"$uo\" ]; then pu=; \
               while read -r k a b; do [ \"$k\" = Uid: ] && {{ pu=$a; break; }}; done 2>/dev/null < \"$p/status\"; \
               [ \"$pu\" = \"$uo\" ] || inu=; fi; fi; \
           if [ -n \"$want\" ]; then \
             if [ \"$p\" = \"$want\" ] || [ \"$p\" = \"$up\" ]; then need=1; fi; \
             if [ \"$pp\" = \"$want\" ]; then need=1; kids=\"$kids$p \"; fi; \
             case \"$kids\" in *\" $pp \"*) need=1;; esac; \
           else case \"$s\" in {comms}) need=1;; esac; fi; \
           [ -n \"$inu\" ] && need=1; [ \"$p\" = \"$also\" ] && need=1; \
           line \"$p\" \"$need\" \"$inu\"; done; fi",
        comms = look.server.comm_pattern(),
    ));
    script
}

/// Parses the output of [`script`]. Lines that do not parse are skipped: a
/// process may vanish while it is being read.
pub fn parse(text: &str) -> Snapshot {
    let mut snapshot = Snapshot::default();
    let mut section = "";
    let mut pidfile = String::new();
    let mut manager = String::new();
    let mut container = String::new();
    for line in text.lines() {
        match line {
            PIDFILE | UNIT | PROCS | CONTAINER => {
                section = line;
                continue;
            }
            _ => {}
        }
        match section {
            PIDFILE => pidfile.push_str(line.trim()),
            UNIT => {
                manager.push_str(line);
                manager.push('\n');
            }
            CONTAINER => {
                container.push_str(line);
                container.push('\n');
            }
            PROCS => {
                if let Some(process) = parse_process(line) {
                    snapshot.processes.insert(process.pid, process);
                }
            }
            _ => {}
        }
    }
    if text.lines().any(|l| l == PIDFILE) && !pidfile.is_empty() {
        snapshot.pidfile = Some(pidfile);
    }
    if text.lines().any(|l| l == UNIT) {
        snapshot.manager = Some(manager);
    }
    if text.lines().any(|l| l == CONTAINER) {
        snapshot.container = Some(container);
    }
    snapshot
}

/// `1234 (gunicorn) S 1 ... starttime ...\tcmdline`
fn parse_process(line: &str) -> Option<Process> {
    let mut fields = line.splitn(3, '\t');
    let stat = fields.next()?;
    let cmdline = fields.next().unwrap_or("");
    let in_unit = fields.next().is_some_and(|flag| flag.trim() == "1");
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let pid = stat[..open].trim().parse().ok()?;
    let comm = &stat[open + 1..close];
    // Fields after the command: state is field 3, ppid 4, starttime 22.
    let rest: Vec<&str> = stat[close + 1..].split_whitespace().collect();
    let state = rest.first()?.chars().next()?;
    let ppid = rest.get(1)?.parse().ok()?;
    let start_time = rest.get(19)?.parse().ok()?;
    let cmdline = cmdline.trim_end();
    Some(Process {
        pid,
        ppid,
        start_time,
        state,
        // Kernel threads have no command line; their name stands in.
        cmdline: if cmdline.is_empty() {
            format!("[{comm}]")
        } else {
            cmdline.to_string()
        },
        in_unit,
    })
}

#[cfg(test)]
pub mod fixtures {
    //! Hand-written /proc lines for discovery tests.

    /// Processes every host has that are not Gunicorn: init, and a python
    /// process (pid 300) that a stale pidfile may name.
    pub fn bystanders() -> String {
        format!(
            "{}\n{}\n",
            stat(1, "init", 'S', 0, 1, "/sbin/init"),
            stat(
                300,
                "python3",
                'S',
                1,
                50,
                "/usr/bin/python3 /opt/monitor.py"
            )
        )
    }

    /// A /proc stat line with the fields discovery reads.
    pub fn stat(pid: u32, comm: &str, state: char, ppid: u32, start: u64, cmdline: &str) -> String {
        format!("{pid} ({comm}) {state} {ppid} {pid} {pid} 0 -1 4194560 100 0 0 0 1 1 0 0 20 0 1 0 {start} 1000 100 184467\t{cmdline}")
    }
}

#[cfg(test)]
mod tests {
    use super::fixtures::stat;
    use super::*;

    #[test]
    fn parses_every_section() {
        let text = format!(
            "--herd pidfile\n4242\n\n--herd procs\n{}\n{}\n{}\ngarbage line\n",
            stat(1, "systemd", 'S', 0, 5, "/sbin/init"),
            stat(4242, "gunicorn", 'S', 1, 900, "gunicorn: master [app]"),
            stat(4250, "weird ) name", 'Z', 4242, 950, ""),
        );
        let snapshot = parse(&text);
        assert_eq!(snapshot.pidfile.as_deref(), Some("4242"));
        assert_eq!(snapshot.manager, None);
        assert_eq!(snapshot.processes.len(), 3);
        let master = &snapshot.processes[&4242];
        assert_eq!(
            (master.ppid, master.start_time, master.state),
            (1, 900, 'S')
        );
        assert_eq!(master.cmdline, "gunicorn: master [app]");
        let zombie = &snapshot.processes[&4250];
        assert!(zombie.is_zombie());
        assert_eq!(zombie.cmdline, "[weird ) name]");
    }

    #[test]
    fn a_missing_pidfile_is_none_and_the_manager_answer_is_kept_whole() {
        let snapshot = parse(&format!(
            "--herd pidfile\n\n--herd unit\nrc=0\nMainPID=0\n--herd procs\n{}\t1\n",
            stat(7, "gunicorn", 'S', 1, 5, "gunicorn: master [a]")
        ));
        assert_eq!(snapshot.pidfile, None);
        assert_eq!(snapshot.manager.as_deref(), Some("rc=0\nMainPID=0\n"));
        assert!(snapshot.processes[&7].in_unit);
    }
}

#[cfg(test)]
mod on_this_machine {
    use super::*;

    /// `script` run by the local /bin/sh, its output parsed.
    fn run_script(script: &str) -> Snapshot {
        let output = std::process::Command::new("/bin/sh")
            .arg("-c")
            .arg(script)
            .output()
            .expect("sh runs");
        parse(&String::from_utf8_lossy(&output.stdout))
    }
    use crate::reload::server::GUNICORN;
    use std::time::Duration;

    /// The script run by the local /bin/sh against the real /proc.
    fn run(pidfile: &std::path::Path) -> Snapshot {
        run_waiting(pidfile, None)
    }

    fn run_waiting(pidfile: &std::path::Path, wait: Option<&WaitFor>) -> Snapshot {
        let script = script(&Look {
            server: &GUNICORN,
            pidfile: Some(crate::shell::quote(&pidfile.to_string_lossy())),
            unit: None,
            query: None,
            container: None,
            wait,
        });
        let output = std::process::Command::new("/bin/sh")
            .arg("-c")
            .arg(&script)
            .output()
            .expect("sh runs");
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        parse(&String::from_utf8_lossy(&output.stdout))
    }

    #[test]
    fn a_named_pid_and_its_children_get_their_command_lines_and_others_do_not() {
        let dir = tempfile::tempdir().expect("temp dir");
        let pidfile = dir.path().join("app.pid");
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .expect("sleep starts");
        std::fs::write(&pidfile, format!("{}\n", std::process::id())).expect("pidfile");
        let snapshot = run(&pidfile);
        let _ = child.kill();
        let _ = child.wait();

        assert_eq!(
            snapshot.pidfile.as_deref(),
            Some(std::process::id().to_string().as_str())
        );
        let me = &snapshot.processes[&std::process::id()];
        assert!(!me.cmdline.starts_with('['), "{me:?}");
        let sleeper = &snapshot.processes[&child.id()];
        assert_eq!(sleeper.cmdline, "sleep 30");
        assert_eq!(sleeper.ppid, std::process::id());
        // The parent is read too (is the pid a worker under a master?), and
        // nothing beyond the family.
        let parent = std::fs::read_to_string(format!("/proc/{}/stat", std::process::id()))
            .expect("own stat");
        let parent: u32 = parent
            .rsplit(") ")
            .next()
            .and_then(|r| r.split(' ').nth(1))
            .and_then(|p| p.parse().ok())
            .expect("own ppid");
        assert!(snapshot.processes.contains_key(&parent), "{snapshot:?}");
        assert!(
            !snapshot.processes.contains_key(&1) || parent == 1,
            "{snapshot:?}"
        );
    }

    #[test]
    fn without_a_named_pid_every_process_is_listed_and_only_likely_ones_read_in_full() {
        let script = script(&Look {
            server: &GUNICORN,
            pidfile: None,
            unit: None,
            query: None,
            container: None,
            wait: None,
        });
        let snapshot = run_script(&script);
        assert!(snapshot.processes.len() > 2);
        let init = &snapshot.processes[&1];
        assert!(init.cmdline.starts_with('['), "{init:?}");
    }

    #[test]
    fn systemds_answer_is_kept_and_names_the_pid_to_look_at() {
        let me = std::process::id();
        let script = script(&Look {
            server: &GUNICORN,
            pidfile: None,
            unit: Some(UnitLook {
                name: "app.service".into(),
                owner: None,
            }),
            query: Some(format!(
                "printf 'LoadState=loaded\\nActiveState=active\\nMainPID=%s\\n' {me}"
            )),
            container: None,
            wait: None,
        });
        let snapshot = run_script(&script);
        assert_eq!(
            snapshot.manager.as_deref(),
            Some(format!("rc=0\nLoadState=loaded\nActiveState=active\nMainPID={me}\n").as_str())
        );
        // The main pid's family only: this process and its parent, read in full.
        assert!(!snapshot.processes[&me].cmdline.starts_with('['));
        assert!(snapshot.processes.len() < 10, "{snapshot:?}");
    }

    /// The last component of a cgroup this process is in, standing in for a
    /// unit's name; `None` where every hierarchy puts it at the root.
    fn own_cgroup_leaf() -> Option<String> {
        let text = std::fs::read_to_string("/proc/self/cgroup").ok()?;
        text.lines()
            .filter_map(|l| l.rsplit(':').next())
            .filter_map(|path| path.rsplit('/').next())
            .find(|leaf| !leaf.is_empty())
            .map(str::to_string)
    }

    fn marked(unit: &str, owner: Option<&str>) -> bool {
        let script = script(&Look {
            server: &GUNICORN,
            pidfile: None,
            unit: Some(UnitLook {
                name: crate::shell::quote(unit),
                owner: owner.map(str::to_string),
            }),
            query: None,
            container: None,
            wait: None,
        });
        let snapshot = run_script(&script);
        snapshot.processes[&std::process::id()].in_unit
    }

    #[test]
    fn a_units_processes_are_those_in_its_cgroup_and_of_its_managers_account() {
        let Some(leaf) = own_cgroup_leaf() else {
            eprintln!("skipped: this process sits at the root of every cgroup hierarchy");
            return;
        };
        assert!(marked(&leaf, Some("$(id -u)")), "{leaf}");
        assert!(
            !marked(&leaf, Some("99999")),
            "another account's unit of that name"
        );
        assert!(!marked(&leaf, Some("")), "an account that does not exist");
        assert!(!marked(&format!("x{leaf}"), None), "a longer name");
    }

    /// A stand-in master: a shell whose one child sleeps `seconds`.
    fn master_with_one_child(seconds: &str) -> (std::process::Child, u32) {
        let mut master = std::process::Command::new("/bin/sh")
            .arg("-c")
            .arg(format!("sleep {seconds} & wait"))
            .spawn()
            .expect("sh starts");
        let children = format!("/proc/{0}/task/{0}/children", master.id());
        for _ in 0..100 {
            let listed = std::fs::read_to_string(&children).unwrap_or_default();
            if let Some(child) = listed.split_whitespace().next() {
                return (master, child.parse().expect("a pid"));
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let _ = master.kill();
        let _ = master.wait();
        panic!("the stand-in master never had a child");
    }

    /// Waits on the host for a stand-in master whose one child sleeps
    /// `seconds`, with that child old (to be replaced) or already new.
    /// Returns how long the wait took, the snapshot after it, and the child.
    fn wait_on_stand_in(seconds: &str, child_is_old: bool) -> (Duration, Snapshot, u32) {
        let dir = tempfile::tempdir().expect("temp dir");
        let (mut master, child) = master_with_one_child(seconds);
        let pidfile = dir.path().join("app.pid");
        std::fs::write(&pidfile, format!("{}\n", master.id())).expect("pidfile");
        let wait = WaitFor {
            pid: master.id(),
            old: if child_is_old { vec![child] } else { vec![] },
            wanted: 1,
            // 4 s: far longer than any test below lets the wait last.
            looks: 100,
        };
        let started = std::time::Instant::now();
        let snapshot = run_waiting(&pidfile, Some(&wait));
        let waited = started.elapsed();
        let _ = std::process::Command::new("kill")
            .arg(child.to_string())
            .status();
        let _ = master.wait();
        (waited, snapshot, child)
    }

    #[test]
    fn the_wait_lasts_while_an_old_child_lives_and_ends_when_it_is_gone() {
        let (waited, snapshot, child) = wait_on_stand_in("0.5", true);
        assert!(waited >= Duration::from_millis(300), "{waited:?}");
        assert!(waited < Duration::from_secs(3), "{waited:?}");
        // The snapshot is taken after the wait: the old child is gone from it.
        assert!(!snapshot.processes.contains_key(&child), "{snapshot:?}");
    }

    #[test]
    fn the_wait_ends_at_once_when_the_children_are_already_as_wanted() {
        let (waited, snapshot, child) = wait_on_stand_in("5", false);
        assert!(waited < Duration::from_secs(2), "{waited:?}");
        assert!(snapshot.processes.contains_key(&child), "{snapshot:?}");
    }
}
