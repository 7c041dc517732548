#!/bin/sh
# Run each libFuzzer harness for SECONDS, on a scratch copy of its seed
# corpus (the committed corpus stays small). Crashes land in
# fuzz/artifacts/. Usage: fuzz.sh BUILD_DIR SECONDS TARGET...
set -eu
build=$1 secs=$2
shift 2
mkdir -p fuzz/artifacts
status=0
for t in "$@"; do
	work=$(mktemp -d)
	cp fuzz/corpus/"$t"/* "$work"/ 2>/dev/null || true
	echo "fuzz: $t for ${secs}s"
	if ! "$build/fuzz_$t" -max_total_time="$secs" -print_final_stats=1 \
	    -artifact_prefix=fuzz/artifacts/"$t"- "$work" \
	    >"fuzz/artifacts/$t.log" 2>&1; then
		echo "fuzz: $t FAILED, see fuzz/artifacts/$t.log" >&2
		status=1
	fi
	grep -E '^(stat::number_of_executed_units|stat::peak_rss_mb|#[0-9]+[[:space:]]+DONE)' \
	    "fuzz/artifacts/$t.log" | sed "s/^/fuzz: $t: /" || true
	rm -rf "$work"
done
exit $status
