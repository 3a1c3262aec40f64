# herd: signal one process only if it is still the one herd proved.
# Arguments: SIGNAL PID START, where START is the start time herd read for
# PID (field 22 of /proc/PID/stat, clock ticks after boot). A pid that was
# reused since, or a process that exited, is never signalled.
# Prints one line: `signalled`, `gone` (no such process, or a zombie) or
# `changed NOW` (the pid now belongs to a process that started at NOW).
sig=$1 pid=$2 want=$3
if ! IFS= read -r stat 2>/dev/null < "/proc/$pid/stat"; then
  echo gone
  exit 0
fi
# The command name may hold spaces and parentheses: cut after the last `) `.
rest=${stat##*) }
# shellcheck disable=SC2086 # split on purpose: one field per word
set -- $rest
case $1 in Z|X|x) echo gone; exit 0 ;; esac
# Field 22 of the stat line is the 20th after the command name.
if [ "${20}" != "$want" ]; then
  echo "changed ${20}"
  exit 0
fi
kill -s "$sig" "$pid" || exit 1
echo signalled
