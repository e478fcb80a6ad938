#!/bin/bash
# Tests berth-monitor with the real runc and a busybox bundle. Run as root:
#   bash monitor/test.sh
# Prints "N passed, M failed" and exits non-zero on any failure.
set -u
cd "$(dirname "$0")/.."
ROOT=$PWD
MON=${BERTH_MONITOR:-$ROOT/monitor/berth-monitor}
RUNC=${RUNC:-/usr/sbin/runc}

[ "$(id -u)" = 0 ] || { echo "test.sh: must run as root" >&2; exit 2; }
make -s -C monitor || { echo "test.sh: build failed" >&2; exit 2; }

T=$(mktemp -d /tmp/berth-monitor-test.XXXXXX)
RR=$T/runc-root
PASS=0
FAIL=0
MONITORS=()   # pids of monitors this script started, for the final cleanup

ok() { PASS=$((PASS + 1)); echo "ok   - $1"; }
bad() { FAIL=$((FAIL + 1)); echo "FAIL - $1"; }
check() { local d=$1; shift; if "$@"; then ok "$d"; else bad "$d"; fi; }
note() { echo "       $*"; }

cleanup_all() {
  local id p
  for id in $("$RUNC" --root "$RR" list -q 2>/dev/null); do "$RUNC" --root "$RR" delete -f "$id" >/dev/null 2>&1; done
  for p in "${MONITORS[@]}"; do kill -0 "$p" 2>/dev/null && kill "$p" 2>/dev/null; done
  [ -n "${KEEP:-}" ] || rm -rf "$T"
}
trap cleanup_all EXIT

# wait_for COND_CMD... : polls for up to 10 s
wait_for() {
  local i
  for i in $(seq 200); do "$@" && return 0; sleep 0.05; done
  return 1
}
exists() { [ -e "$1" ]; }
gone() { [ ! -e "$1" ]; }
dead() { ! kill -0 "$1" 2>/dev/null; }

# ---------------------------------------------------------------- fixtures
"$ROOT/scripts/busybox-rootfs" amd64 "$T/rootfs.tar" || { echo "test.sh: busybox-rootfs failed" >&2; exit 2; }
mkdir -p "$T/rootfs" "$RR"
tar -C "$T/rootfs" -xf "$T/rootfs.tar"
printf '#!/nonexistent-interpreter\necho hi\n' > "$T/rootfs/bad-interp.sh"
chmod 755 "$T/rootfs/bad-interp.sh"
(cd "$T" && "$RUNC" spec && mv config.json base.json)

# mkbundle NAME TERMINAL(true|false) ARGS_JSON
mkbundle() {
  mkdir -p "$T/$1"
  jq --arg root "$T/rootfs" --argjson term "$2" --argjson args "$3" \
    '.process.terminal=$term | .process.args=$args | .root.path=$root' "$T/base.json" > "$T/$1/config.json"
}

# start_monitor NAME [FLAGS...]: bundle $T/NAME, state dir $T/NAME.state, log $T/NAME.state/ctr.log.
# Sets SYNC to the line read from the sync fd, and MPID to the monitor's pid.
start_monitor() {
  local name=$1; shift
  local st=$T/$name.state fifo=$T/$name.sync fd
  mkdir -p "$st"
  mkfifo "$fifo"
  exec {fd}<>"$fifo"
  "$MON" --id "$name" --bundle "$T/$name" --state-dir "$st" --runtime "$RUNC" --runtime-root "$RR" \
    --log "$st/ctr.log" --sync-fd 3 "$@" 3>"$fifo"
  SYNC=
  read -r -t 10 -u "$fd" SYNC
  exec {fd}<&-
  MPID=$(cat "$st/monitor.pid" 2>/dev/null)
  [ -n "$MPID" ] && MONITORS+=("$MPID")
}

rstart() { "$RUNC" --root "$RR" start "$1"; }
finish_ctr() { # NAME: delete the container, check the monitor is gone, remove everything
  "$RUNC" --root "$RR" delete -f "$1" >/dev/null 2>&1
  rm -rf "${T:?}/$1" "$T/$1.state" "$T/$1.sync"
}
json_field() { jq -r ".$2" "$1" 2>/dev/null; }

cat > "$T/client.py" <<'PY'
import json, os, socket, struct, sys, time

def frames(buf):
    out = []
    while len(buf) >= 8:
        stream, size = buf[0], struct.unpack(">I", buf[4:8])[0]
        if buf[1:4] != b"\0\0\0" or len(buf) < 8 + size:
            break
        out.append((stream, buf[8:8 + size]))
        buf = buf[8 + size:]
    return out, buf

def ctl(path, line):
    s = socket.socket(socket.AF_UNIX)
    s.connect(path)
    s.sendall(line.encode() + b"\n")
    reply = b""
    while not reply.endswith(b"\n"):
        d = s.recv(100)
        if not d:
            break
        reply += d
    s.close()
    return reply.decode().strip()

mode = sys.argv[1]
if mode == "ctl":                       # ctl SOCK LINE
    print(ctl(sys.argv[2], sys.argv[3]))
elif mode == "attach":                  # attach SOCK OUT READY [send=TEXT] [shutdown] [wait=TEXT ctl=SOCK cmd=LINE]
    sock, out, ready = sys.argv[2:5]
    opts = dict(a.split("=", 1) if "=" in a else (a, "1") for a in sys.argv[5:])
    s = socket.socket(socket.AF_UNIX)
    s.connect(sock)
    open(ready, "w").close()
    if "send" in opts:
        s.sendall(opts["send"].encode())
    if "shutdown" in opts:
        s.shutdown(socket.SHUT_WR)
    s.settimeout(15)
    raw, rest, got, reply = b"", b"", [], None
    while True:
        d = s.recv(65536)
        if not d:
            break
        raw += d
        fr, rest = frames(rest + d)
        got += fr
        text = b"".join(p for _, p in got)
        if reply is None and "wait" in opts and opts["wait"].encode() in text:
            reply = ctl(opts["ctl"], opts["cmd"])
    fr, rest = frames(rest)
    got += fr
    json.dump({"frames": [[st, p.decode("utf-8", "replace")] for st, p in got],
               "trailing": len(rest), "ctl": reply}, open(out, "w"))
elif mode == "slow":                    # slow SOCK OUT READY GO: connect, do not read until GO exists
    sock, out, ready, go = sys.argv[2:6]
    s = socket.socket(socket.AF_UNIX)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect(sock)
    open(ready, "w").close()
    while not os.path.exists(go):
        time.sleep(0.05)
    s.settimeout(10)
    total, closed = 0, False
    try:
        while True:
            d = s.recv(1 << 20)
            if not d:
                closed = True
                break
            total += len(d)
    except OSError:
        closed = True
    json.dump({"bytes": total, "closed": closed}, open(out, "w"))
PY

# logcheck FILE: every line a valid json-file entry with an RFC3339Nano time; prints "stream|log" lines
cat > "$T/logcheck.py" <<'PY'
import json, re, signal, sys
signal.signal(signal.SIGPIPE, signal.SIG_DFL)
TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{1,9}Z$")
for path in sys.argv[1:]:
    for line in open(path, "rb"):
        assert line.endswith(b"\n"), "unterminated line"
        e = json.loads(line.decode("utf-8"))
        assert list(e) == ["log", "stream", "time"], e
        assert e["stream"] in ("stdout", "stderr"), e
        assert TIME.match(e["time"]), e["time"]
        print(e["stream"] + "|" + json.dumps(e["log"]))
PY
logcheck() { python3 "$T/logcheck.py" "$@"; }

echo "# berth-monitor tests ($(basename "$RUNC") $("$RUNC" --version | head -1 | awk '{print $3}'))"

# ---------------------------------------------------------------- 1. exit code, streams, log format
mkbundle basic false '["sh","-c","echo out; echo err >&2; exit 3"]'
start_monitor basic
check "basic: sync fd says ok <pid>" grep -Eq '^ok [0-9]+$' <<< "$SYNC"
check "basic: init.pid matches the sync line" [ "ok $(cat "$T/basic.state/init.pid")" = "$SYNC" ]
check "basic: attach.sock and ctl.sock exist, mode 0600" \
  [ "$(stat -c %a "$T/basic.state/attach.sock" "$T/basic.state/ctl.sock" | sort -u)" = 600 ]
check "basic: monitor is detached (not our child, another session)" \
  [ "$(ps -o ppid= -p "$MPID" | tr -d ' ')" != $$ -a "$(ps -o sid= -p "$MPID")" != "$(ps -o sid= -p $$)" ]
rstart basic
wait_for exists "$T/basic.state/exit.json"
check "basic: exit.json exit_code 3 signal 0" \
  [ "$(json_field "$T/basic.state/exit.json" exit_code) $(json_field "$T/basic.state/exit.json" signal)" = "3 0" ]
check "basic: exited_at is RFC3339Nano" \
  grep -Eq '"exited_at":"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{9}Z"' "$T/basic.state/exit.json"
check "basic: log has stdout 'out' and stderr 'err' lines" \
  [ "$(logcheck "$T/basic.state/ctr.log" | sort | tr '\n' ' ')" = 'stderr|"err\n" stdout|"out\n" ' ]
wait_for dead "$MPID"
check "basic: monitor exited and removed its sockets" \
  [ ! -e "$T/basic.state/attach.sock" -a ! -e "$T/basic.state/ctl.sock" ]
check "basic: exit.json has exactly the documented fields" \
  [ "$(jq -c 'keys' "$T/basic.state/exit.json")" = '["exit_code","exited_at","signal"]' ]
finish_ctr basic

# ---------------------------------------------------------------- 2. the parent dies with kill -9
mkbundle orphan false '["sh","-c","for i in 1 2 3 4; do echo $i; sleep 0.4; done"]'
mkdir -p "$T/orphan.state"
mkfifo "$T/orphan.sync"
setsid bash -c "exec 5<>'$T/orphan.sync'
  '$MON' --id orphan --bundle '$T/orphan' --state-dir '$T/orphan.state' --runtime '$RUNC' --runtime-root '$RR' \
    --log '$T/orphan.state/ctr.log' --sync-fd 3 3>'$T/orphan.sync'
  read -r -t 10 -u 5 line; echo \"\$line\" > '$T/orphan.line'; exec sleep 1000" &
PARENT=$!
wait_for exists "$T/orphan.line"
kill -9 -- -"$PARENT"
wait "$PARENT" 2>/dev/null
MPID=$(cat "$T/orphan.state/monitor.pid"); MONITORS+=("$MPID")
check "orphan: sync said ok before the parent died" grep -Eq '^ok [0-9]+$' "$T/orphan.line"
check "orphan: monitor survives kill -9 of its parent's process group" kill -0 "$MPID"
rstart orphan
sleep 0.6
check "orphan: container is logging while its starter is dead" grep -q '"log":"1\\n"' "$T/orphan.state/ctr.log"
wait_for exists "$T/orphan.state/exit.json"
check "orphan: exit.json exit_code 0 at the end" [ "$(json_field "$T/orphan.state/exit.json" exit_code)" = 0 ]
check "orphan: all four lines logged" [ "$(logcheck "$T/orphan.state/ctr.log" | tr '\n' ' ')" = \
  'stdout|"1\n" stdout|"2\n" stdout|"3\n" stdout|"4\n" ' ]
finish_ctr orphan

# ---------------------------------------------------------------- 3. killed container
mkbundle killed false '["sleep","100"]'
start_monitor killed
rstart killed
INIT=$(cat "$T/killed.state/init.pid")
check "fds: the container's init has only fds 0, 1, 2" [ "$(ls /proc/"$INIT"/fd | sort | tr '\n' ' ')" = '0 1 2 ' ]
check "fds: stdin is /dev/null without --stdin" [ "$(readlink /proc/"$INIT"/fd/0)" = /dev/null ]
RSS=$(awk '/^VmRSS/ {print $2}' /proc/"$MPID"/status)
PSS=$(awk '/^Pss:/ {print $2}' /proc/"$MPID"/smaps_rollup 2>/dev/null)
note "monitor VmRSS ${RSS} kB, Pss ${PSS:-?} kB (running container)"
check "rss: VmRSS of a running monitor < 3 MB (${RSS} kB)" [ "$RSS" -lt 3072 ]
"$RUNC" --root "$RR" kill killed KILL
wait_for exists "$T/killed.state/exit.json"
check "killed: exit_code 137 signal 9" \
  [ "$(json_field "$T/killed.state/exit.json" exit_code) $(json_field "$T/killed.state/exit.json" signal)" = "137 9" ]
finish_ctr killed

# ---------------------------------------------------------------- 4. missing executable
mkbundle missing false '["/bin/nonexistent"]'
start_monitor missing
note "sync for /bin/nonexistent: $SYNC"
check "missing: sync says error <code> with runc's 'no such file or directory'" \
  grep -Eq '^error [0-9]+ .*(not found|no such file or directory)' <<< "$SYNC"
wait_for dead "$MPID"
check "missing: monitor exited, sockets removed, no exit.json" \
  [ ! -e "$T/missing.state/attach.sock" -a ! -e "$T/missing.state/ctl.sock" -a ! -e "$T/missing.state/exit.json" ]
check "missing: the container does not exist" bash -c "! '$RUNC' --root '$RR' state missing >/dev/null 2>&1"
finish_ctr missing

mkbundle nopath false '["nonexistent"]'
start_monitor nopath
note "sync for nonexistent (PATH lookup): $SYNC"
check "missing: PATH lookup failure says 'executable file not found'" \
  grep -Eq '^error [0-9]+ .*executable file not found' <<< "$SYNC"
finish_ctr nopath

mkbundle noexec false '["/etc/passwd"]'
start_monitor noexec
note "sync for a non-executable file: $SYNC"
check "noexec: sync says 'permission denied'" grep -Eq '^error [0-9]+ .*permission denied' <<< "$SYNC"
finish_ctr noexec

# An interpreter that is missing is only found by execve at `runc start` time.
mkbundle badinterp false '["/bad-interp.sh"]'
start_monitor badinterp
check "bad interpreter: create succeeds (ok)" grep -Eq '^ok [0-9]+$' <<< "$SYNC"
rstart badinterp 2>/dev/null
wait_for exists "$T/badinterp.state/exit.json"
note "exit.json after a failed exec at start: $(cat "$T/badinterp.state/exit.json" 2>/dev/null)"
note "its log: $(cat "$T/badinterp.state/ctr.log" 2>/dev/null | head -c 300)"
check "bad interpreter: exit.json records a non-zero exit" \
  [ "$(json_field "$T/badinterp.state/exit.json" exit_code)" -ne 0 ]
finish_ctr badinterp

# ---------------------------------------------------------------- 5. attach, stdin, close-stdin
mkbundle attach false '["sh","-c","cat; echo done >&2"]'
start_monitor attach --stdin
python3 "$T/client.py" attach "$T/attach.state/attach.sock" "$T/a1.json" "$T/a1.ready" \
  send=$'hello\n' wait=hello ctl="$T/attach.state/ctl.sock" cmd=close-stdin &
C1=$!
python3 "$T/client.py" attach "$T/attach.state/attach.sock" "$T/a2.json" "$T/a2.ready" &
C2=$!
wait_for exists "$T/a1.ready"; wait_for exists "$T/a2.ready"
rstart attach
wait_for exists "$T/attach.state/exit.json"
wait "$C1" "$C2"
check "attach: client 1 got stdcopy frames stdout 'hello' then stderr 'done'" \
  [ "$(jq -c '.frames' "$T/a1.json")" = '[[1,"hello\n"],[2,"done\n"]]' ]
check "attach: a second (read-only) client got the same frames" \
  [ "$(jq -c '.frames' "$T/a2.json")" = '[[1,"hello\n"],[2,"done\n"]]' ]
check "attach: ctl close-stdin answered ok" [ "$(jq -r '.ctl' "$T/a1.json")" = ok ]
check "attach: cat ended by close-stdin with exit 0" [ "$(json_field "$T/attach.state/exit.json" exit_code)" = 0 ]
check "attach: stdin data is in the log too" [ "$(logcheck "$T/attach.state/ctr.log" | tr '\n' ' ')" = \
  'stdout|"hello\n" stderr|"done\n" ' ]
finish_ctr attach; rm -f "$T"/a[12].*

# --stdin-once: the last writer's shutdown(SHUT_WR) closes the container's stdin
mkbundle once false '["cat"]'
start_monitor once --stdin --stdin-once
python3 "$T/client.py" attach "$T/once.state/attach.sock" "$T/o1.json" "$T/o1.ready" send=$'bye\n' shutdown &
C1=$!
wait_for exists "$T/o1.ready"
rstart once
wait_for exists "$T/once.state/exit.json"
wait "$C1"
check "stdin-once: shutdown(SHUT_WR) of the only client ends cat (exit 0) after its data" \
  [ "$(json_field "$T/once.state/exit.json" exit_code) $(jq -c '.frames' "$T/o1.json")" = '0 [[1,"bye\n"]]' ]
finish_ctr once

# Without --stdin-once, a client hanging up does not close stdin.
mkbundle keep false '["cat"]'
start_monitor keep --stdin
rstart keep
python3 "$T/client.py" attach "$T/keep.state/attach.sock" "$T/k1.json" "$T/k1.ready" send=$'one\n' shutdown &
C1=$!
sleep 0.5
check "stdin: a client's hang-up alone leaves the container running" kill -0 "$(cat "$T/keep.state/init.pid")"
check "ctl: resize without a tty is an error" [ "$(python3 "$T/client.py" ctl "$T/keep.state/ctl.sock" 'resize 1 2')" = "error not a tty" ]
check "ctl: unknown command is an error" [ "$(python3 "$T/client.py" ctl "$T/keep.state/ctl.sock" 'bogus')" = "error unknown command" ]
python3 "$T/client.py" ctl "$T/keep.state/ctl.sock" close-stdin >/dev/null
wait_for exists "$T/keep.state/exit.json"
kill "$C1" 2>/dev/null; wait "$C1" 2>/dev/null
check "stdin: then close-stdin ends it, and the data reached cat" \
  [ "$(json_field "$T/keep.state/exit.json" exit_code) $(logcheck "$T/keep.state/ctr.log")" = '0 stdout|"one\n"' ]
finish_ctr keep

# ---------------------------------------------------------------- 6. TTY
mkbundle tty true '["sh","-c","tty; stty size; [ -t 1 ] && echo isatty; echo e >&2"]'
start_monitor tty --tty
check "tty: create ok" grep -Eq '^ok [0-9]+$' <<< "$SYNC"
check "tty: console socket removed after create" gone "$T/tty.state/console.sock"
check "tty: resize before start answers ok" [ "$(python3 "$T/client.py" ctl "$T/tty.state/ctl.sock" 'resize 40 100')" = ok ]
rstart tty
wait_for exists "$T/tty.state/exit.json"
check "tty: output logged as stdout with \\r\\n line ends" [ "$(logcheck "$T/tty.state/ctr.log" | tr '\n' ' ')" = \
  'stdout|"/dev/pts/0\r\n" stdout|"40 100\r\n" stdout|"isatty\r\n" stdout|"e\r\n" ' ]
check "tty: exit 0" [ "$(json_field "$T/tty.state/exit.json" exit_code)" = 0 ]
finish_ctr tty

mkbundle ttyin true '["cat"]'
start_monitor ttyin --tty --stdin
python3 "$T/client.py" attach "$T/ttyin.state/attach.sock" "$T/t1.json" "$T/t1.ready" \
  send=$'abc\n' wait=abc ctl="$T/ttyin.state/ctl.sock" cmd=close-stdin &
C1=$!
wait_for exists "$T/t1.ready"
rstart ttyin
wait_for exists "$T/ttyin.state/exit.json"
wait "$C1"
check "tty stdin: input reaches cat through the pty, frames are stream 1" \
  [ "$(jq -r '[.frames[] | .[0]] | unique | tostring' "$T/t1.json") $(jq -r '[.frames[] | .[1]] | add' "$T/t1.json" | tr -d '\r\n')" = '[1] abcabc' ]
check "tty stdin: close-stdin sends EOF, cat exits 0" [ "$(json_field "$T/ttyin.state/exit.json" exit_code)" = 0 ]
finish_ctr ttyin

# ---------------------------------------------------------------- 7. log rotation, escaping, long lines
mkbundle rot false '["sh","-c","yes 0123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789 | head -n 3000; echo last"]'
start_monitor rot --log-max-size 100000 --log-max-files 3
rstart rot
wait_for exists "$T/rot.state/exit.json"
L=$T/rot.state/ctr.log
note "rotation sizes: $(stat -c '%n=%s' "$L" "$L".* 2>/dev/null | sed "s|$T/rot.state/||g" | tr '\n' ' ')"
check "rotation: ctr.log, .1, .2 exist, no .3" [ -s "$L" -a -s "$L.1" -a -s "$L.2" -a ! -e "$L.3" ]
check "rotation: each file <= 100000 bytes" [ "$(stat -c %s "$L" "$L.1" "$L.2" | sort -n | tail -1)" -le 100000 ]
check "rotation: every file is whole json-file lines" bash -c "python3 '$T/logcheck.py' '$L.2' '$L.1' '$L' >/dev/null"
check "rotation: the newest line is in ctr.log" [ "$(logcheck "$L" | tail -1)" = 'stdout|"last\n"' ]
finish_ctr rot

mkbundle esc false '["sh","-c","printf \"q\\\"b\\\\\\\\s\\001\\ttab \\303\\274 \\342\\202\\254 \\377\\n\"; head -c 40000 /dev/zero | tr \"\\000\" x"]'
start_monitor esc
rstart esc
wait_for exists "$T/esc.state/exit.json"
check "escaping: quotes, backslash, control chars, UTF-8 kept, invalid byte -> U+FFFD" \
  [ "$(logcheck "$T/esc.state/ctr.log" | head -1)" = 'stdout|"q\"b\\s\u0001\ttab \u00fc \u20ac \ufffd\n"' ]
check "escaping: raw UTF-8 is passed through in the file" grep -q 'ü €' "$T/esc.state/ctr.log"
check "long line: 40000 bytes without newline -> entries of 16384, 16384, 7232" \
  [ "$(python3 -c 'import json,sys; print(*[len(json.loads(l)["log"]) for l in open(sys.argv[1])][1:])' "$T/esc.state/ctr.log")" = '16384 16384 7232' ]
finish_ctr esc

# ---------------------------------------------------------------- 8. a slow client never blocks the container
mkbundle slow false '["sh","-c","yes 0123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789 | head -n 40000; echo end"]'
start_monitor slow
python3 "$T/client.py" slow "$T/slow.state/attach.sock" "$T/s1.json" "$T/s1.ready" "$T/s1.go" &
C1=$!
wait_for exists "$T/s1.ready"
rstart slow
wait_for exists "$T/slow.state/exit.json"
check "slow client: container ran to completion while a client did not read" \
  [ "$(json_field "$T/slow.state/exit.json" exit_code)" = 0 ]
check "slow client: the whole output is in the log" [ "$(logcheck "$T/slow.state/ctr.log" | tail -1)" = 'stdout|"end\n"' ]
touch "$T/s1.go"
wait "$C1"
note "slow client received $(jq .bytes "$T/s1.json") of ~4 MB before being dropped"
check "slow client: it was dropped (got < 2 MB, then EOF)" \
  [ "$(jq '.bytes < 2000000 and .closed' "$T/s1.json")" = true ]
finish_ctr slow

# ---------------------------------------------------------------- 9. exec mode
mkbundle host false '["sleep","100"]'
start_monitor host
rstart host
HPID=$MPID
# mkproc NAME TERMINAL ARGS_JSON: a process.json for runc exec, from the bundle's process
mkproc() { jq --argjson term "$2" --argjson args "$3" '.process | .terminal=$term | .args=$args' "$T/base.json" > "$T/$1.proc.json"; }
# start_exec NAME [FLAGS...]: an exec monitor in $T/NAME.state; sets SYNC (first line, "ready"), MPID, and SYNCFD (to read the rest)
start_exec() {
  local name=$1; shift
  local st=$T/$name.state fifo=$T/$name.sync
  mkdir -p "$st"
  mkfifo "$fifo"
  exec {SYNCFD}<>"$fifo"
  "$MON" --exec --process "$T/$name.proc.json" --id host --state-dir "$st" --runtime "$RUNC" --runtime-root "$RR" \
    --sync-fd 3 "$@" 3>"$fifo"
  SYNC=
  read -r -t 10 -u "$SYNCFD" SYNC
  MPID=$(cat "$st/monitor.pid" 2>/dev/null)
  [ -n "$MPID" ] && MONITORS+=("$MPID")
}
sync_rest() { local l=; read -r -t 10 -u "$SYNCFD" l; exec {SYNCFD}<&-; echo "$l"; }

mkproc ex1 false '["sh","-c","echo out; echo err >&2; exit 7"]'
start_exec ex1
check "exec: first sync line is ready" [ "$SYNC" = ready ]
check "exec: sockets exist before start" [ -S "$T/ex1.state/attach.sock" -a -S "$T/ex1.state/ctl.sock" ]
python3 "$T/client.py" attach "$T/ex1.state/attach.sock" "$T/e1.json" "$T/e1.ready" &
C1=$!
wait_for exists "$T/e1.ready"
check "exec: ctl start answers ok" [ "$(python3 "$T/client.py" ctl "$T/ex1.state/ctl.sock" start)" = ok ]
L2=$(sync_rest)
check "exec: second sync line is ok <pid> ($L2)" grep -Eq '^ok [0-9]+$' <<< "$L2"
wait_for exists "$T/ex1.state/exit.json"
wait "$C1"
check "exec: exit.json exit_code 7" [ "$(json_field "$T/ex1.state/exit.json" exit_code)" = 7 ]
check "exec: the attach client got stdout and stderr frames from the start" \
  [ "$(jq -c '[.frames[]] | sort' "$T/e1.json")" = '[[1,"out\n"],[2,"err\n"]]' ]
check "exec: no log file without --log" [ -z "$(ls "$T/ex1.state" | grep -v -e exit.json -e monitor.pid -e init.pid -e runc.log)" ]
check "exec: the container keeps running" kill -0 "$(cat "$T/host.state/init.pid")"

mkproc ex2 false '["no-such-command"]'
start_exec ex2
python3 "$T/client.py" ctl "$T/ex2.state/ctl.sock" start >/dev/null
L2=$(sync_rest)
note "sync for a missing exec command: $L2"
check "exec: a missing command is an error line" grep -Eq '^error [0-9]+ .*executable file not found' <<< "$L2"

mkproc ex3 true '["sh","-c","stty size; read x; echo got $x"]'
start_exec ex3 --tty --stdin
python3 "$T/client.py" attach "$T/ex3.state/attach.sock" "$T/e3.json" "$T/e3.ready" send=$'hi\n' &
C1=$!
wait_for exists "$T/e3.ready"
python3 "$T/client.py" ctl "$T/ex3.state/ctl.sock" 'resize 33 77' >/dev/null
python3 "$T/client.py" ctl "$T/ex3.state/ctl.sock" start >/dev/null
L2=$(sync_rest)
wait_for exists "$T/ex3.state/exit.json"
wait "$C1"
check "exec tty: size from resize before start, stdin through the pty" \
  [ "$(jq -r '[.frames[] | .[1]] | add' "$T/e3.json" | tr -d '\r' | grep -v -e '^hi$' -e '^$' | tr '\n' ' ')" = '33 77 got hi ' ]
check "exec tty: exit 0" [ "$(json_field "$T/ex3.state/exit.json" exit_code)" = 0 ]
check "exec: start twice is an error" [ "$(python3 "$T/client.py" ctl "$T/host.state/ctl.sock" start)" = "error already started" ]
"$RUNC" --root "$RR" kill host KILL
finish_ctr host

echo "$PASS passed, $FAIL failed"
[ "$FAIL" = 0 ]
