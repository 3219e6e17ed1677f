# pgprov's remote shell: one per SSH connection, fed scripts on stdin (see ssh.ts, which sends
# this program first). Arguments: MODE CLIENT MACHINE PID STARTED RUN, where MODE is
#   read         run scripts, take no lock (ping, status, plan);
#   lock         take the host's pgprov lock first, or report who holds it and exit 75;
#   evict:RUN    the same, but when run RUN holds it (a pgprov run that is gone), end that run's
#                remote work first, then take the lock (waiting, with a bound).
# and the rest say who runs pgprov (host name, machine id, PID, start of the run, run id).
#
# Remote work ends with the connection that started it: each script runs in a session of its
# own; when the connection closes (pgprov ended, killed, or interrupted), the script's session is
# sent TERM, given 10 s to stop at a safe point, then KILL. A script sent with a grace of G s
# (a package install: dpkg stopped halfway leaves more to repair) is let finish for up to G s
# first, and says so to a run that finds the host held. Fixed text: nothing secret is in it.

__pg_d=/run/pgprov
__pg_mode=$1
__pg_lock=0
__pg_c=
__pg_cs=
__pg_cg=0
__pg_rd=

# The start time of process $1 (field 22 of its stat), to tell it from a later one with its PID.
__pg_start() {
  local l
  read -r l 2>/dev/null <"/proc/$1/stat" || return 1
  set -- ${l##*) }
  echo "${20}"
}

# Sends signal $2 (0 only tests) to every live process of session $1; false when there is none.
__pg_signal() {
  local sid="$1" sig="$2" f l none=1
  for f in /proc/[0-9]*/stat; do
    read -r l 2>/dev/null <"$f" || continue
    set -- ${l##*) }
    [ "$4" = "$sid" ] && [ "$1" != Z ] || continue
    none=0
    [ "$sig" = 0 ] || { f=${f#/proc/}; kill -"$sig" "${f%/stat}" 2>/dev/null; }
  done
  return $none
}

# Ends session $1 (unless a process with its number started at another time than $2: another
# session then): TERM, up to $3 s to finish, then KILL.
__pg_end() {
  local i=0 now
  [ "${1:-0}" -gt 1 ] || return 0
  now=$(__pg_start "$1") && [ -n "$2" ] && [ "$now" != "$2" ] && return 0
  __pg_signal "$1" TERM || return 0
  while [ "$i" -lt $(($3 * 5)) ]; do
    sleep 0.2
    __pg_signal "$1" 0 || return 0
    i=$((i + 1))
  done
  __pg_signal "$1" KILL || :
}

# Waits up to $2 s for session $1 to end by itself.
__pg_let_finish() {
  local i=0
  while [ "$i" -lt "$2" ] && __pg_signal "$1" 0; do
    sleep 1
    i=$((i + 1))
  done
}

__pg_quit() {
  trap "" HUP INT TERM PIPE
  if [ -n "$__pg_c" ] && [ "$__pg_cg" -gt 0 ]; then
    [ "$__pg_lock" != 1 ] || echo "finishing=yes" >>"$__pg_d/doing"
    __pg_let_finish "$__pg_c" "$__pg_cg"
  fi
  [ -z "$__pg_c" ] || __pg_end "$__pg_c" "$__pg_cs" 10
  [ "$__pg_lock" != 1 ] || rm -f "$__pg_d/holder" "$__pg_d/doing"
  [ -z "$__pg_rd" ] || kill -TERM -"$__pg_rd" 2>/dev/null
  exit "$1"
}
trap "__pg_quit 129" HUP
trap "__pg_quit 130" INT
trap "__pg_quit 143" TERM
trap "__pg_quit 141" PIPE

# Who holds the lock, for the run that finds it taken: key=value lines.
__pg_report() {
  local loop start sid
  {
    echo "lock=held"
    cat "$__pg_d/holder" "$__pg_d/doing" 2>/dev/null
    loop=$(sed -n "s/^loop=//p" "$__pg_d/holder" 2>/dev/null)
    start=$(sed -n "s/^loop_start=//p" "$__pg_d/holder" 2>/dev/null)
    if [ -n "$loop" ] && [ "$(__pg_start "$loop")" = "$start" ]; then
      echo "loop_alive=yes"
      ps -o pid=,etimes=,args= --ppid "$loop" 2>/dev/null | head -3 | sed "s/^ */child=/"
      sid=$(sed -n "s/^session=//p" "$__pg_d/doing" 2>/dev/null)
      [ -z "$sid" ] || ps -o pid=,etimes=,args= -s "$sid" 2>/dev/null | head -5 | sed "s/^ */process=/"
    fi
  } | sed "s/^/@@pgprov-held /" >&2
}

# Ends the remote work of the run that holds the lock: its shell, whose trap ends its script's
# session; then that session, in case the shell was already gone. A script with a grace is let
# finish: the run that evicts waits for the lock, saying what it waits for.
__pg_evict() {
  local loop start sid sidstart grace i=0
  loop=$(sed -n "s/^loop=//p" "$__pg_d/holder" 2>/dev/null)
  start=$(sed -n "s/^loop_start=//p" "$__pg_d/holder" 2>/dev/null)
  sid=$(sed -n "s/^session=//p" "$__pg_d/doing" 2>/dev/null)
  sidstart=$(sed -n "s/^session_start=//p" "$__pg_d/doing" 2>/dev/null)
  grace=$(sed -n "s/^grace=//p" "$__pg_d/doing" 2>/dev/null)
  if [ -n "$loop" ] && [ "$(__pg_start "$loop")" = "$start" ]; then
    kill -TERM "$loop" 2>/dev/null
    [ "${grace:-0}" -eq 0 ] || return 0
    while [ "$i" -lt 75 ] && [ "$(__pg_start "$loop")" = "$start" ]; do
      sleep 0.2
      i=$((i + 1))
    done
    [ "$(__pg_start "$loop")" != "$start" ] || kill -KILL "$loop" 2>/dev/null
  fi
  [ -z "$sid" ] || __pg_end "$sid" "$sidstart" 5
}

if [ "$__pg_mode" != read ]; then
  # The lock's directory: root's alone, so no other user can hold the lock or plant a link in it.
  # /run is root's, so once checked it cannot be swapped for something else.
  [ -e "$__pg_d" ] || [ -L "$__pg_d" ] || mkdir -m 0700 "$__pg_d" 2>/dev/null
  if [ -L "$__pg_d" ] || [ ! -d "$__pg_d" ] || [ "$(stat -c "%u %a" "$__pg_d")" != "0 700" ]; then
    echo "@@pgprov-lock-dir $(ls -ld "$__pg_d" 2>&1)" >&2
    exit 76
  fi
  # The lock is on the directory itself: no file to follow or truncate.
  exec 9<"$__pg_d" || exit 76
  if ! flock -n 9; then
    if [ "${__pg_mode#evict:}" != "$__pg_mode" ] && grep -qx "run=${__pg_mode#evict:}" "$__pg_d/holder" 2>/dev/null; then
      __pg_evict
      flock -w 15 9 || { __pg_report; exit 75; }
    else
      __pg_report
      exit 75
    fi
  fi
  __pg_lock=1
  printf "client=%s\nmachine=%s\npid=%s\nstarted=%s\nrun=%s\nloop=%s\nloop_start=%s\n" "$2" "$3" "$4" "$5" "$6" "$$" "$(__pg_start $$)" >"$__pg_d/holder"
  : >"$__pg_d/doing"
fi

# A reader passes the connection's stdin on through a FIFO and, when it ends (the connection is
# gone), signals this shell, even while a script runs. A background list's stdin is /dev/null
# unless given: the connection's is passed on as fd 4.
__pg_t=$(mktemp -d) && mkfifo "$__pg_t/in" || exit 90
exec 4<&0
setsid sh -c 'cat >"$1"; kill -HUP "$2"' pgprov-reader "$__pg_t/in" $$ <&4 >/dev/null 2>&1 4<&- 9>&- &
__pg_rd=$!
exec 3<"$__pg_t/in" 4<&- </dev/null
rm -rf "$__pg_t"

# "LENGTH ID GRACE WHAT" lines, each followed by LENGTH bytes of script. A script runs with stdin closed
# (so it cannot eat the next one) and without the lock's fd (so no daemon it starts keeps it); its
# stdout and its stderr end with a marker carrying ID and its exit code.
while read -r __pg_n __pg_id __pg_cg __pg_what <&3; do
  __pg_s=$(head -c "$__pg_n" <&3)
  printf %s "$__pg_s" | setsid sh -c 's=$(cat); exec </dev/null; eval "$s"' pgprov-script 3<&- 9>&- &
  __pg_c=$!
  __pg_cs=$(__pg_start "$__pg_c")
  [ "$__pg_lock" != 1 ] || printf "session=%s\nsession_start=%s\ngrace=%s\ndoing=%s\n" "$__pg_c" "$__pg_cs" "$__pg_cg" "$__pg_what" >"$__pg_d/doing"
  wait "$__pg_c"
  __pg_r=$?
  __pg_c=
  __pg_cg=0
  [ "$__pg_lock" != 1 ] || : >"$__pg_d/doing"
  printf "\n@@%s %s\n" "$__pg_id" "$__pg_r"
  printf "\n@@%s\n" "$__pg_id" >&2
done
__pg_quit 0
