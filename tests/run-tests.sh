#!/usr/bin/env bash
# tunnelbox test runner.
#
#   tests/run-tests.sh unit BIN...        cmocka binaries (through $QEMU when set)
#   tests/run-tests.sh integration        every tests/integration/*.sh, sorted
#   tests/run-tests.sh all BIN...         both
#
# Environment:
#   O                 build directory (default build); exported to the scripts
#   TB                the tunnelbox binary (default $O/tunnelbox); exported
#   QEMU              runner prefix for unit binaries, e.g. "qemu-s390x -L /usr/s390x-linux-gnu"
#   UNIT_TIMEOUT      seconds per unit binary (default 60, 300 under QEMU)
#   INTEG_TIMEOUT     seconds per integration script (default 180)
#   TESTS             only binaries and scripts whose name contains one of these words
#   INTEG_TESTS       the board's own selection of integration scripts (same
#                     matching; board.mk sets it, e.g. linux-lwip: "lwip")
#   VERBOSE=1         print every script's whole output, not only on failure
#
# A unit binary reports through cmocka's TAP output. An integration script
# prints "ok - what" / "not ok - what" lines (and "# comment" lines); exit 77
# with no result line means "skipped", any other non-zero exit without a
# "not ok" line counts as one failure. A report from AddressSanitizer or
# LeakSanitizer, in the test or in any process it started (the gateway),
# fails the test too (ASAN_OPTIONS gets a log_path per test). Output of
# failed tests is replayed; whole logs stay in $O/test-logs/.
# The last line is always "N passed, N failed"; the exit status is 1 if any
# test failed.
set -uo pipefail
shopt -s nullglob

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(dirname "$here")
O=${O:-build}
case $O in /*) ;; *) O=$root/$O ;; esac
TB=${TB:-$O/tunnelbox}
case $TB in /*) ;; *) TB=$root/$TB ;; esac
QEMU=${QEMU:-}
UNIT_TIMEOUT=${UNIT_TIMEOUT:-$([ -n "$QEMU" ] && echo 300 || echo 60)}
INTEG_TIMEOUT=${INTEG_TIMEOUT:-180}
VERBOSE=${VERBOSE:-0}
LOGDIR=$O/test-logs
export O TB

if [ -t 1 ]; then
	c_ok=$'\e[32m' c_bad=$'\e[1;31m' c_skip=$'\e[33m' c_dim=$'\e[2m' c_hd=$'\e[1m' c_off=$'\e[0m'
else
	c_ok= c_bad= c_skip= c_dim= c_hd= c_off=
fi

passed=0 failed=0 skipped=0
failures=()

usage() {
	sed -n '2,7p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
	exit 2
}

# run_bounded SECONDS LOG CMD...: run CMD with stdin from /dev/null and all
# output in LOG, kill it after SECONDS, then kill anything it left running in
# its process group (timeout(1) makes one for it). Sets $rc, and $san_report
# to 1 when a sanitizer (in any process the test started, the gateway too)
# wrote a report: those go to files, appended to LOG afterwards.
run_bounded() {
	local secs=$1 log=$2 pid sandir f
	shift 2
	sandir=$log.san
	rm -rf "$sandir"
	mkdir -p "$sandir"
	# verify_asan_link_order=0: stdbuf's LD_PRELOAD comes before libasan.
	ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}log_path=$sandir/asan:verify_asan_link_order=0" \
		UBSAN_OPTIONS="${UBSAN_OPTIONS:+$UBSAN_OPTIONS:}log_path=$sandir/ubsan" \
		timeout --kill-after=10 "$secs" "$@" </dev/null >"$log" 2>&1 &
	pid=$!
	wait "$pid"
	rc=$?
	if kill -0 -- "-$pid" 2>/dev/null; then
		echo "# left processes running after it exited; killed them" >>"$log"
		kill -TERM -- "-$pid" 2>/dev/null
		sleep 0.2
		kill -KILL -- "-$pid" 2>/dev/null
	fi
	san_report=0
	for f in "$sandir"/*; do
		san_report=1
		{
			echo "# sanitizer report ${f##*/}:"
			cat "$f"
		} >>"$log"
	done
	rm -rf "$sandir"
	return 0
}

describe_rc() {
	case $1 in
	124) echo "timed out after $2 s" ;;
	137) echo "killed (SIGKILL) after timeout" ;;
	12[6-7]) echo "could not be run (exit $1)" ;;
	*) if [ "$1" -gt 128 ]; then echo "died of signal $(($1 - 128)) ($(kill -l $(($1 - 128)) 2>/dev/null))"; else echo "exited $1"; fi ;;
	esac
}

replay() { # LOG: show a failed test's output, indented, at most 60 lines
	local n
	n=$(wc -l <"$1")
	if [ "$n" -gt 60 ]; then
		echo "${c_dim}    ... ($((n - 60)) earlier lines in $1)${c_off}"
	fi
	tail -n 60 "$1" | sed "s/^/${c_dim}    | /; s/\$/${c_off}/"
}

pass() { passed=$((passed + 1)); printf '  %sok%s      %s\n' "$c_ok" "$c_off" "$1"; }
skip() { skipped=$((skipped + 1)); printf '  %sskip%s    %s\n' "$c_skip" "$c_off" "$1"; }
fail() {
	failed=$((failed + 1))
	failures+=("$1")
	printf '  %sFAIL%s    %s\n' "$c_bad" "$c_off" "$1"
}

# parse_tap NAME LOG: count ok / not ok lines of one test program's output.
# Sets $t_ok $t_fail $t_skip $t_planned.
parse_tap() {
	local name=$1 log=$2 line desc
	t_ok=0 t_fail=0 t_skip=0 t_planned=0
	while IFS= read -r line; do
		case $line in
		[0-9]*..[0-9]*)
			[[ $line =~ ^1\.\.([0-9]+)$ ]] && t_planned=$((t_planned + BASH_REMATCH[1]))
			;;
		"ok"* | "not ok"*)
			[[ $line =~ ^(not )?ok(\ +[0-9]+)?(\ +-)?(\ +(.*))?$ ]] || continue
			desc=${BASH_REMATCH[5]}
			if [[ $desc == *"# SKIP"* || $desc == *"# skip"* ]]; then
				desc=${desc/\# SKIP/}
				desc=${desc/\# skip/}
				skip "$name: ${desc# }"
				t_skip=$((t_skip + 1))
			elif [ -z "${BASH_REMATCH[1]}" ]; then
				pass "$name: $desc"
				t_ok=$((t_ok + 1))
			else
				fail "$name: $desc"
				t_fail=$((t_fail + 1))
			fi
			;;
		esac
	done <"$log"
}

board_selected() { # board_selected NAME: is NAME picked by $INTEG_TESTS (all when unset)?
	local w
	[ -n "${INTEG_TESTS:-}" ] || return 0
	for w in $INTEG_TESTS; do [[ $1 == *"$w"* ]] && return 0; done
	return 1
}
selected() { # selected NAME: is NAME picked by $TESTS (all when unset)?
	local w
	[ -n "${TESTS:-}" ] || return 0
	for w in $TESTS; do [[ $1 == *"$w"* ]] && return 0; done
	return 1
}

run_unit() {
	local bin name log bins=()
	for bin in "$@"; do selected "$(basename "$bin")" && bins+=("$bin"); done
	set -- "${bins[@]}"
	[ $# -gt 0 ] || { echo "${c_hd}== unit tests: none built${c_off}"; return; }
	echo "${c_hd}== unit tests (${#}${QEMU:+, under ${QEMU%% *}})${c_off}"
	# Line-buffered stdout, so that a test killed by the timeout still shows
	# how far it got (stdbuf's preload cannot cross into qemu's guest).
	local linebuf=()
	[ -z "$QEMU" ] && command -v stdbuf >/dev/null && linebuf=(stdbuf -oL)
	mkdir -p "$LOGDIR/unit"
	for bin in "$@"; do
		name=$(basename "$bin")
		log=$LOGDIR/unit/$name.log
		if [ ! -x "$bin" ]; then
			fail "$name: binary $bin missing"
			continue
		fi
		# shellcheck disable=SC2086 # QEMU is a command line prefix
		CMOCKA_MESSAGE_OUTPUT=TAP run_bounded "$UNIT_TIMEOUT" "$log" "${linebuf[@]}" $QEMU "$bin"
		parse_tap "$name" "$log"
		if [ "$san_report" = 1 ]; then
			fail "$name: sanitizer report"
			t_fail=1
		elif [ "$rc" -ne 0 ] && [ "$t_fail" -eq 0 ]; then
			fail "$name: $(describe_rc "$rc" "$UNIT_TIMEOUT") without reporting a failed test"
			t_fail=1
		elif [ "$rc" -eq 0 ] && [ $((t_ok + t_fail + t_skip)) -lt "$t_planned" ]; then
			fail "$name: planned $t_planned tests, reported $((t_ok + t_fail + t_skip))"
			t_fail=1
		elif [ $((t_ok + t_fail + t_skip)) -eq 0 ] && [ "$rc" -eq 0 ]; then
			fail "$name: ran no test"
			t_fail=1
		fi
		[ "$t_fail" -gt 0 ] && replay "$log"
	done
}

run_integration() {
	local scripts=() s name log
	for s in "$root"/tests/integration/*.sh; do
		selected "$(basename "$s")" && board_selected "$(basename "$s")" && scripts+=("$s")
	done
	echo "${c_hd}== integration tests (${#scripts[@]} scripts, TB=$TB)${c_off}"
	if [ ! -x "$TB" ] && [ ${#scripts[@]} -gt 0 ]; then
		fail "integration: $TB is not built"
		return
	fi
	mkdir -p "$LOGDIR/integration"
	for s in "${scripts[@]}"; do
		name=$(basename "$s" .sh)
		log=$LOGDIR/integration/$name.log
		echo "${c_dim}  -- $name${c_off}"
		run_bounded "$INTEG_TIMEOUT" "$log" bash "$s"
		parse_tap "$name" "$log"
		if [ "$rc" -eq 77 ] && [ $((t_ok + t_fail + t_skip)) -eq 0 ]; then
			skip "$name: $(grep -m1 '^#' "$log" | sed 's/^# *//')"
			continue
		fi
		if [ "$san_report" = 1 ]; then
			fail "$name: sanitizer report from a process it ran"
			t_fail=1
		elif [ "$rc" -ne 0 ] && [ "$t_fail" -eq 0 ]; then
			fail "$name: $(describe_rc "$rc" "$INTEG_TIMEOUT") without a \"not ok\" line"
			t_fail=1
		elif [ $((t_ok + t_fail + t_skip)) -eq 0 ]; then
			fail "$name: printed no result line"
			t_fail=1
		fi
		if [ "$t_fail" -gt 0 ] || [ "$VERBOSE" = 1 ]; then
			replay "$log"
		fi
	done
}

[ $# -ge 1 ] || usage
mode=$1
shift
start=$SECONDS
case $mode in
unit) run_unit "$@" ;;
integration) [ $# -eq 0 ] || usage; run_integration ;;
all) run_unit "$@"; run_integration ;;
*) usage ;;
esac

echo
if [ ${#failures[@]} -gt 0 ]; then
	echo "${c_bad}failed:${c_off}"
	printf '  %s\n' "${failures[@]}"
	echo "  (logs in $LOGDIR)"
fi
[ "$skipped" -gt 0 ] && echo "# $skipped skipped"
echo "# $mode tests took $((SECONDS - start)) s"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
