#!/usr/bin/env bash
# tests/fuzz-smoke.sh FUZZER...: run each libFuzzer binary for FUZZ_SECONDS
# (default 5) on its seed corpus, as `make fuzz-smoke` does in CI.
#
# Seeds: tests/fuzz/corpus/<target>/ (target as in fuzz_socks5; a folder
# named without the fuzz_ prefix is taken too) and a dictionary
# tests/fuzz/<target>.dict when present. New inputs and crash artifacts go
# to $O/fuzz/, never into the source tree. Any crash, leak, timeout or
# sanitizer report fails the run, and so does each target named in
# FUZZ_NOT_BUILT; the last line is "N passed, N failed".
set -uo pipefail
shopt -s nullglob

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
O=${O:-$root/build}
FUZZ_SECONDS=${FUZZ_SECONDS:-5}
passed=0 failed=0
bad=()

echo "== fuzz smoke ($# targets, ${FUZZ_SECONDS} s each)"
for bin in "$@"; do
	name=$(basename "$bin")
	seeds=()
	for d in "$root/tests/fuzz/corpus/$name" "$root/tests/fuzz/corpus/${name#fuzz_}"; do
		[ -d "$d" ] && seeds+=("$d")
	done
	work=$O/fuzz/corpus/$name
	art=$O/fuzz/artifacts/$name
	log=$O/fuzz/$name.log
	rm -rf "$art"
	mkdir -p "$work" "$art"
	opts=(-max_total_time="$FUZZ_SECONDS" -timeout=10 -rss_limit_mb=2048 -max_len=65536
		-artifact_prefix="$art/" -print_final_stats=1)
	dict=$root/tests/fuzz/$name.dict
	[ -f "$dict" ] && opts+=(-dict="$dict")
	timeout --kill-after=10 $((FUZZ_SECONDS * 4 + 60)) "$bin" "${opts[@]}" "$work" "${seeds[@]}" \
		</dev/null >"$log" 2>&1
	rc=$?
	runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
	cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1)
	info="${runs:-?} runs, ${cov:-cov: ?}, ${#seeds[@]} seed dir(s)"
	if [ "$rc" -eq 0 ]; then
		passed=$((passed + 1))
		printf '  ok      %s (%s)\n' "$name" "$info"
	else
		failed=$((failed + 1))
		bad+=("$name")
		printf '  FAIL    %s: exit %d (%s)\n' "$name" "$rc" "$info"
		grep -E -m1 -A 12 'ERROR: |runtime error|deadly signal' "$log" | sed 's/^/    | /'
		grep -E 'SUMMARY|Test unit written' "$log" | sed 's/^/    | /'
		for a in "$art"/*; do echo "    reproduce: $bin $a"; done
	fi
done
for name in ${FUZZ_NOT_BUILT:-}; do
	failed=$((failed + 1))
	bad+=("$name")
	printf '  FAIL    %s: did not build (see above)\n' "$name"
done
[ ${#bad[@]} -eq 0 ] || echo "fuzz targets that failed: ${bad[*]} (logs: $O/fuzz/<target>.log)"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
