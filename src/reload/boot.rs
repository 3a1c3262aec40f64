//! Waiting on the host until new workers prove they booted (see
//! [`BootProof`]): one command polls every worker given, answers as soon as
//! each has booted, and stops at once when one dies or the master does.

use std::collections::BTreeMap;

use super::server::BootProof;
use super::snapshot::WAIT_INTERVAL;

/// Marks the boot wait among the commands herd runs.
pub const MARKER: &str = "herd: wait for workers to boot";

/// What the host said about one worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Boot {
    Booted,
    /// Gone (or a zombie) before it proved it booted.
    Dead,
    /// The proof cannot be read for this worker (no heartbeat file found,
    /// `/proc` of the worker unreadable to the account reading it).
    Unproven,
    /// Not booted yet when the wait ended.
    Waiting,
}

/// Reads the monotonic-clock heartbeat test in shell: `$a` the mode, `$y`
/// the modification time, `$bt` the boot time, all from `stat`/`/proc/stat`.
const HEARTBEAT_TOUCHED: &str =
    "{ [ \"$a\" = 0 ] || [ \"$a\" = 1 ] || [ \"$y\" -lt \"$bt\" ]; } 2>/dev/null";

/// `case` patterns of a stat line whose process is gone for good.
const ENDED: &str = "''|*') Z '*|*') X '*";

impl BootProof {
    /// The host-side wait: `workers` of `master`, up to `looks` looks
    /// [`WAIT_INTERVAL`] apart. Prints one `PID STATE` line per worker.
    pub fn script(&self, master: u32, workers: &[u32], looks: u32) -> String {
        let test = match self {
            BootProof::HeartbeatFile { prefix } => {
                return heartbeat_script(prefix, master, workers, looks)
            }
            // An fd list the account may not read proves nothing either way.
            BootProof::EventLoop => "l=$(ls -l \"/proc/$w/fd\" 2>/dev/null) || { echo \"$w unproven\"; continue; }\n\
                 case \"$l\" in *'anon_inode:[eventpoll]'*) echo \"$w booted\"; continue;; esac"
                .to_string(),
            BootProof::Thread { name } => format!(
                "up=; for t in /proc/$w/task/*/comm; do c=; read -r c 2>/dev/null < \"$t\"; [ \"$c\" = {name} ] && {{ up=1; break; }}; done\n\
                 if [ -n \"$up\" ]; then echo \"$w booted\"; continue; fi",
                name = crate::shell::quote(name)
            ),
        };
        presence_script(&test, master, workers, looks)
    }
}

/// Tail of every wait: the workers still pending, and after a worker died,
/// up to a second's wait for the master to exit too (Gunicorn's and uWSGI's
/// masters exit when a worker cannot load the app), so the snapshot that
/// follows tells which of the two failed.
fn wait_tail() -> String {
    let interval = WAIT_INTERVAL.as_secs_f64();
    format!(
        "for f in $pend; do w=${{f#/proc/}}; echo \"${{w%%/*}} waiting\"; done\n\
         if [ -n \"$dead\" ]; then j=0; while [ $j -lt 25 ]; do \
           s=; read -r s 2>/dev/null < \"/proc/$m/stat\"; case \"$s\" in {ENDED}) break;; esac; \
           sleep {interval} 2>/dev/null || break; j=$((j+1)); done; fi\n"
    )
}

/// A wait on a sign that appears in `/proc` once a worker booted: `test`
/// is shell that, for worker `$w`, says `booted` or `unproven` and
/// `continue`s, or falls through while the worker has not booted yet.
fn presence_script(test: &str, master: u32, workers: &[u32], looks: u32) -> String {
    let workers: String = workers.iter().map(|w| format!(" {w}")).collect();
    let interval = WAIT_INTERVAL.as_secs_f64();
    format!(
        "# {MARKER}\n\
         m={master}; i=0; pend='{workers}'; dead=\n\
         while [ -n \"$pend\" ]; do rest=\n\
           for w in $pend; do s=; read -r s 2>/dev/null < \"/proc/$w/stat\"\n\
             case \"$s\" in {ENDED}) echo \"$w dead\"; dead=1; continue;; esac\n\
             {test}\n\
             rest=\"$rest $w\"\n\
           done\n\
           pend=$rest; [ -n \"$pend\" ] && [ -z \"$dead\" ] || break\n\
           s=; read -r s 2>/dev/null < \"/proc/$m/stat\"; case \"$s\" in {ENDED}) break;; esac\n\
           [ $i -lt {looks} ] || break\n\
           sleep {interval} 2>/dev/null || break; i=$((i+1))\n\
         done\n{tail}",
        tail = wait_tail()
    )
}

/// The heartbeat wait: finds each worker's heartbeat file among its fds,
/// then watches the files' times and modes with one `stat` per look.
fn heartbeat_script(prefix: &str, master: u32, workers: &[u32], looks: u32) -> String {
    let workers: String = workers.iter().map(|w| format!(" {w}")).collect();
    let interval = WAIT_INTERVAL.as_secs_f64();
    format!(
        "# {MARKER}\n\
         m={master}; i=0; bt=; pend=; dead=\n\
         while read -r x v; do [ \"$x\" = btime ] && {{ bt=$v; break; }}; done 2>/dev/null < /proc/stat\n\
         command -v stat >/dev/null 2>&1 || bt=\n\
         for w in{workers}; do n=; s=; read -r s 2>/dev/null < \"/proc/$w/stat\"\n\
           case \"$s\" in {ENDED}) echo \"$w dead\"; dead=1; continue;; esac\n\
           l=$(ls -l \"/proc/$w/fd\" 2>/dev/null)\n\
           while IFS= read -r x; do case \"$x\" in *' -> '*'/{prefix}'*' (deleted)') n=${{x%% -> *}}; n=${{n##* }}; break;; esac; done <<HERD_EOF\n$l\nHERD_EOF\n\
           if [ -n \"$n\" ] && [ -n \"$bt\" ]; then pend=\"$pend /proc/$w/fd/$n\"; else echo \"$w unproven\"; fi\n\
         done\n\
         while [ -n \"$pend\" ] && [ -z \"$dead\" ]; do\n\
           r=$(stat -L -c '%a %Y %n' $pend 2>/dev/null); rest=\n\
           for f in $pend; do w=${{f#/proc/}}; w=${{w%%/*}}; up=\n\
             while read -r a y g; do [ \"$g\" = \"$f\" ] || continue; {HEARTBEAT_TOUCHED} && up=1; break; done <<HERD_EOF\n$r\nHERD_EOF\n\
             if [ -n \"$up\" ]; then echo \"$w booted\"; continue; fi\n\
             s=; read -r s 2>/dev/null < \"/proc/$w/stat\"\n\
             case \"$s\" in {ENDED}) echo \"$w dead\"; dead=1; continue;; esac\n\
             rest=\"$rest $f\"\n\
           done\n\
           pend=$rest; [ -n \"$pend\" ] && [ -z \"$dead\" ] || break\n\
           s=; read -r s 2>/dev/null < \"/proc/$m/stat\"; case \"$s\" in {ENDED}) break;; esac\n\
           [ $i -lt {looks} ] || break\n\
           sleep {interval} 2>/dev/null || break; i=$((i+1))\n\
         done\n\
         {tail}",
        tail = wait_tail()
    )
}

/// Parses the wait's answer; lines that do not parse are skipped.
pub fn parse(text: &str) -> BTreeMap<u32, Boot> {
    text.lines()
        .filter_map(|line| {
            let (pid, state) = line.trim().split_once(' ')?;
            let state = match state {
                "booted" => Boot::Booted,
                "dead" => Boot::Dead,
                "unproven" => Boot::Unproven,
                "waiting" => Boot::Waiting,
                _ => return None,
            };
            Some((pid.parse().ok()?, state))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reload::server::GUNICORN;
    use std::process::Command;

    fn proof() -> &'static BootProof {
        GUNICORN.boot_proof.as_ref().unwrap()
    }

    #[test]
    fn the_answer_is_one_state_per_worker() {
        let states = parse("601 booted\n602 dead\n603 unproven\n604 waiting\nnoise\n605 other\n");
        assert_eq!(
            states.into_iter().collect::<Vec<_>>(),
            vec![
                (601, Boot::Booted),
                (602, Boot::Dead),
                (603, Boot::Unproven),
                (604, Boot::Waiting)
            ]
        );
    }

    fn run(script: &str) -> BTreeMap<u32, Boot> {
        let output = Command::new("sh").arg("-c").arg(script).output().unwrap();
        assert!(output.status.success(), "{output:?}");
        parse(&String::from_utf8_lossy(&output.stdout))
    }

    /// A process holding an unlinked `wgunicorn-` file on fd 7, touched the
    /// way Gunicorn touches it (modification time from the monotonic clock)
    /// once `ready` exists.
    fn worker(dir: &std::path::Path) -> std::process::Child {
        Command::new("python3")
            .arg("-c")
            .arg(format!(
                "import os, tempfile, time\n\
                 fd, name = tempfile.mkstemp(prefix='wgunicorn-', dir='{dir}')\n\
                 os.unlink(name); os.dup2(fd, 7)\n\
                 open('{dir}/started', 'w').close()\n\
                 while not os.path.exists('{dir}/ready'): time.sleep(0.02)\n\
                 t = time.monotonic(); os.utime(7, (t, t))\n\
                 time.sleep(30)\n",
                dir = dir.display()
            ))
            .spawn()
            .unwrap()
    }

    #[test]
    fn a_worker_boots_when_its_heartbeat_is_touched_and_is_dead_when_gone() {
        let dir = tempfile::tempdir().unwrap();
        let mut child = worker(dir.path());
        let pid = child.id();
        let started = (0..250).any(|_| {
            std::thread::sleep(std::time::Duration::from_millis(20));
            dir.path().join("started").exists()
        });
        assert!(started, "the test worker did not start");
        let me = std::process::id();
        // Untouched: still waiting after the looks it was given.
        assert_eq!(
            run(&proof().script(me, &[pid], 2)).get(&pid),
            Some(&Boot::Waiting)
        );
        std::fs::write(dir.path().join("ready"), "").unwrap();
        assert_eq!(
            run(&proof().script(me, &[pid], 100)).get(&pid),
            Some(&Boot::Booted)
        );
        child.kill().unwrap();
        child.wait().unwrap();
        // A process without the file cannot prove anything; a gone one is dead.
        let states = run(&proof().script(me, &[me, pid], 2));
        assert_eq!(states.get(&me), Some(&Boot::Unproven));
        assert_eq!(states.get(&pid), Some(&Boot::Dead));
    }
}
