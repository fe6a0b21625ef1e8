#!/usr/bin/env bash
# The dogpile tool run as an operator runs it: on the shipped configs and on broken ones,
# checking exit status, stdout and stderr. Usage: test_tool.sh TOOL SOURCE_DIR
set -uo pipefail
tool=$1
src=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }

# run ARGS...: sets $status, $out (stdout) and $err (stderr).
run() {
  "$tool" "$@" >"$work/out" 2>"$work/err"
  status=$?
  out=$(cat "$work/out")
  err=$(cat "$work/err")
}

run --help
[ "$status" -eq 0 ] || fail "--help exits 0, not $status"
grep -q "^usage:" <<<"$out" || fail "--help prints the usage on stdout"
[ -z "$err" ] || fail "--help writes nothing on stderr: $err"

run get somekey
[ "$status" -eq 2 ] || fail "an unknown command exits 2, not $status"
grep -q "unknown command 'get'" <<<"$err" || fail "an unknown command is named on stderr: $err"
[ -z "$out" ] || fail "an unknown command writes nothing on stdout"

for config in "$src"/configs/example.ini "$src"/configs/example.json; do
  run demo "$config"
  [ "$status" -eq 0 ] || fail "demo $config exits 0, not $status: $err"
  grep -q "lookups: .* hits" <<<"$out" || fail "demo $config shows its lookups"
  grep -q "on dogpile.cache.null" <<<"$out" && fail "demo $config ran on the null backend"
  grep -q "keys start with dogpile-demo:" <<<"$out" || fail "demo $config uses keys of its own"
done

run demo "$src/configs/example.json" cache.serialized
[ "$status" -eq 0 ] || fail "demo on a named region exits 0: $err"
grep -q "^region cache.serialized on dogpile.cache.memory_pickle" <<<"$out" ||
  fail "demo runs on the region named"

run demo "$src/configs/example.json" cache.nowhere
[ "$status" -eq 1 ] || fail "demo on a region that does not exist exits 1, not $status"
grep -q "has no region cache.nowhere; its regions: cache.disabled" <<<"$err" ||
  fail "demo names the regions there are: $err"

echo '{"cache": {"off": {"backend": "dogpile.cache.null"}}}' >"$work/null.json"
run demo "$work/null.json"
[ "$status" -eq 1 ] || fail "demo with no region that stores values exits 1, not $status"
grep -q "has no region whose backend stores values" <<<"$err" || fail "and says why: $err"

echo '{"cache": {"hour": {"backend": "dogpile.cache.memory", "expiration_time": 3600}}}' \
  >"$work/hour.json"
start=$(date +%s)
run demo "$work/hour.json"
[ "$status" -eq 0 ] || fail "demo on a region expiring after an hour exits 0: $err"
[ $(($(date +%s) - start)) -lt 60 ] || fail "demo does not wait an hour for values to expire"
grep -q "longer than the demo waits" <<<"$out" || fail "demo says it does not wait"

run plugins
[ "$status" -eq 0 ] || fail "plugins exits 0, not $status: $err"
grep -q "^dogpile.cache.memory " <<<"$out" || fail "plugins lists dogpile.cache.memory"
grep -A3 "^dogpile.test.wrong_build " <<<"$out" | grep -q "NOT USABLE: built with .*cxx11abi0" ||
  fail "plugins marks a plugin built for another toolchain, with why"

# A warning (an argument accepted for Python's sake and ignored) goes to stderr, never into
# the tool's output.
echo '{"cache": {"a": {"backend": "dogpile.cache.memory", "arguments": {"cache_dict": {}}}}}' \
  >"$work/warns.json"
run check "$work/warns.json"
[ "$status" -eq 0 ] || fail "check of a config with an ignored argument exits 0: $err"
grep -q "cache_dict" <<<"$err" || fail "the warning about cache_dict is on stderr: $err"
grep -q "warning" <<<"$out" && fail "stdout carries only the result, no log record: $out"

echo '{"cache": {"broken": ' >"$work/broken.json"
run check "$work/broken.json"
[ "$status" -eq 1 ] || fail "check of a malformed file exits 1, not $status"
grep -q "^dogpile: .*broken.json" <<<"$err" || fail "check names the file on stderr: $err"

[ "$failures" -eq 0 ] && echo "the tool behaves" && exit 0
exit 1
