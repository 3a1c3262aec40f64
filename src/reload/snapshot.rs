//! What the remote side sends for discovery: one round trip that dumps the
//! pidfile, systemd's MainPID and every process (pid, ppid, start time,
//! state, command line) from `/proc`. The controller parses it here, so the
//! decisions are made on data that unit tests can write by hand.

use std::collections::BTreeMap;

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
    /// systemd's MainPID for the unit, when a unit was asked for.
    pub main_pid: Option<String>,
}

/// Markers between the sections of the dump.
const PIDFILE: &str = "--herd pidfile";
const UNIT: &str = "--herd unit";
const PROCS: &str = "--herd procs";

/// The shell script that prints a snapshot. `pidfile` and `unit` are already
/// shell-quoted (or absent).
pub fn script(pidfile: Option<&str>, unit: Option<&str>) -> String {
    // `want` is the pid the pidfile or systemd names: its command line is
    // always read, so a stale pidfile shows what it points at.
    let mut script = String::from("want=\n");
    if let Some(pidfile) = pidfile {
        script.push_str(&format!(
            "echo '{PIDFILE}'; want=$(cat {pidfile} 2>/dev/null); echo \"$want\"\n"
        ));
    }
    if let Some(unit) = unit {
        script.push_str(&format!(
            "echo '{UNIT}'; want=$(systemctl show -p MainPID --value {unit} 2>/dev/null); echo \"$want\"\n\
             [ \"$want\" = 0 ] && want=\n"
        ));
    }
    // One line per process: the stat line (read by the shell itself, no
    // process started), a tab, and the command line with NULs as spaces. The
    // command line costs a process, so it is read only where discovery looks:
    // with a pid named (pidfile, MainPID), that pid, its children and theirs
    // (a USR2 master's workers); otherwise, processes whose name in stat says
    // they can be Gunicorn.
    script.push_str(&format!(
        "echo '{PROCS}'; kids=' '; cd /proc && for p in [0-9]*; do \
         read -r s < \"$p/stat\" 2>/dev/null || continue; c=; need=; \
         r=${{s##*) }}; r=${{r#* }}; pp=${{r%% *}}; \
         if [ -n \"$want\" ]; then \
           if [ \"$p\" = \"$want\" ]; then need=1; fi; \
           if [ \"$pp\" = \"$want\" ]; then need=1; kids=\"$kids$p \"; fi; \
           case \"$kids\" in *\" $pp \"*) need=1;; esac; \
         else case \"$s\" in *' (gunicorn'*|*' (python'*|*' (pypy'*) need=1;; esac; fi; \
         if [ -n \"$need\" ]; then c=$(tr '\\000\\n\\t' '   ' < \"$p/cmdline\" 2>/dev/null); fi; \
         printf '%s\\t%s\\n' \"$s\" \"$c\"; done"
    ));
    script
}

/// Parses the output of [`script`]. Lines that do not parse are skipped: a
/// process may vanish while it is being read.
pub fn parse(text: &str) -> Snapshot {
    let mut snapshot = Snapshot::default();
    let mut section = "";
    let mut pidfile = String::new();
    let mut main_pid = String::new();
    for line in text.lines() {
        match line {
            PIDFILE | UNIT | PROCS => {
                section = line;
                continue;
            }
            _ => {}
        }
        match section {
            PIDFILE => pidfile.push_str(line.trim()),
            UNIT => main_pid.push_str(line.trim()),
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
    if text.lines().any(|l| l == UNIT) && !main_pid.is_empty() {
        snapshot.main_pid = Some(main_pid);
    }
    snapshot
}

/// `1234 (gunicorn) S 1 ... starttime ...\tcmdline`
fn parse_process(line: &str) -> Option<Process> {
    let (stat, cmdline) = line.split_once('\t').unwrap_or((line, ""));
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
        assert_eq!(snapshot.main_pid, None);
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
    fn a_missing_pidfile_is_none() {
        let snapshot = parse("--herd pidfile\n\n--herd unit\n0\n--herd procs\n");
        assert_eq!(snapshot.pidfile, None);
        assert_eq!(snapshot.main_pid.as_deref(), Some("0"));
    }
}

#[cfg(test)]
mod on_this_machine {
    use super::*;

    /// The script run by the local /bin/sh against the real /proc.
    fn run(pidfile: &std::path::Path) -> Snapshot {
        let script = script(
            Some(&crate::template::shell_quote(&pidfile.to_string_lossy())),
            None,
        );
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
        // Everything else is listed (for the tree) without its command line read.
        assert!(snapshot.processes.len() > 2);
        let init = &snapshot.processes[&1];
        assert!(init.cmdline.starts_with('['), "{init:?}");
    }
}
