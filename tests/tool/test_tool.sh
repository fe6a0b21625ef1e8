#!/usr/bin/env bash
# The dogpile tool run as an operator runs it: on the shipped configs and on broken ones,
# checking exit status, stdout and stderr. Usage: test_tool.sh TOOL SOURCE_DIR
set -uo pipefail
tool=$(realpath "$1")
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

run frobnicate somekey
[ "$status" -eq 2 ] || fail "an unknown command exits 2, not $status"
grep -q "unknown command 'frobnicate'" <<<"$err" || fail "an unknown command is named on stderr: $err"
[ -z "$out" ] || fail "an unknown command writes nothing on stdout"

for command in demo plugins check ping get set delete bench stats version; do
  run "$command" --help
  [ "$status" -eq 0 ] || fail "$command --help exits 0, not $status"
  grep -q "^usage: dogpile .*$command" <<<"$out" || fail "$command --help shows its usage: $out"
  grep -q "^exit status: 0 done" <<<"$out" || fail "$command --help documents the exit status"
done
run help get
grep -q "get KEY \[--raw\]" <<<"$out" || fail "help COMMAND shows the command's usage: $out"

run get --colour key
[ "$status" -eq 2 ] || fail "an unknown option exits 2, not $status"
grep -q "unknown option --colour for get" <<<"$err" || fail "the option is named: $err"
grep -q "^usage: dogpile .* get KEY" <<<"$err" || fail "with the command's usage: $err"
run set onlykey
[ "$status" -eq 2 ] || fail "a missing operand exits 2, not $status"
run bench --threads many
[ "$status" -eq 2 ] || fail "a bad number exits 2, not $status"
grep -q "\-\-threads takes a number, not 'many'" <<<"$err" || fail "and says which: $err"

run get nothing-here
[ "$status" -eq 3 ] || fail "get of a key with no value exits 3, not $status"
grep -q "nothing-here: no value in region cache.demo" <<<"$err" || fail "get says so: $err"

run version
[ "$status" -eq 0 ] || fail "version exits 0"
grep -Eq "^dogpile [0-9]+\.[0-9]+\.[0-9]+ \(SDK ABI [0-9]+, build .+\)$" <<<"$out" ||
  fail "version shows the version, SDK ABI and build tag: $out"

# A warning about a region's configuration is said once, and names the region.
cat >"$work/locks.ini" <<'INI'
[cache.a]
backend = dogpile.cache.redis
arguments.url = redis://127.0.0.1:1/0
arguments.distributed_lock = true
[cache.b]
backend = dogpile.cache.redis
arguments.url = redis://127.0.0.1:1/0
arguments.distributed_lock = true
INI
run check "$work/locks.ini"
[ "$status" -eq 0 ] || fail "check of a config with warnings exits 0, not $status: $err"
for region in cache.a cache.b; do
  [ "$(grep -c "region '$region': arguments.thread_local_lock should be false" <<<"$err")" -eq 1 ] ||
    fail "the thread_local_lock warning is said once for $region: $err"
done

for config in "$src"/configs/example.ini "$src"/configs/example.json; do
  run demo "$config"
  [ "$status" -eq 0 ] || fail "demo $config exits 0, not $status: $err"
  grep -q "lookups: .* hits" <<<"$out" || fail "demo $config shows its lookups"
  grep -q "on dogpile.cache.null" <<<"$out" && fail "demo $config ran on the null backend"
  grep -q "keys start with dogpile-demo:" <<<"$out" || fail "demo $config uses keys of its own"
done

# The dbm examples name a file relative to the working directory.
for config in "$src"/configs/dbm.json "$src"/configs/dbm.ini; do
  (cd "$work" && run --config "$config" ping && [ "$status" -eq 0 ] && grep -q "dogpile.cache.dbm *ok" <<<"$out") ||
    fail "ping on $config"
  (cd "$work" && run demo "$config" && [ "$status" -eq 0 ] && grep -q "lookups: .* hits" <<<"$out") ||
    fail "demo on $config"
done
[ -f "$work/dogpile-cache.dbm" ] || fail "the dbm examples' file is in the working directory"

# A bounded region: bench's keys outnumber max_size, and it counts what was evicted.
printf '[cache.small]\nbackend = dogpile.cache.memory\narguments.max_size = 100\n' >"$work/bounded.ini"
run --config "$work/bounded.ini" bench --seconds 0.05 --threads 2 --keys 1000 --json
[ "$status" -eq 0 ] || fail "bench on a bounded region exits 0, not $status: $err"
evictions=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["evictions"])' <<<"$out")
[ "${evictions:-0}" -gt 0 ] 2>/dev/null || fail "bench counts evictions on a bounded region: $out"
run --config "$src/configs/example.json" bench --region cache.local --seconds 0.02 --threads 1
grep -q "^evictions  *0$" <<<"$out" || fail "bench shows no evictions on an unbounded region: $out"

run demo "$src/configs/example.json" cache.serialized
[ "$status" -eq 0 ] || fail "demo on a named region exits 0: $err"
grep -q "^region cache.serialized on dogpile.cache.memory_pickle" <<<"$out" ||
  fail "demo runs on the region named"

run demo "$src/configs/example.json" cache.nowhere
[ "$status" -eq 1 ] || fail "demo on a region that does not exist exits 1, not $status"
grep -q "has no region cache.nowhere; its regions: cache.local cache.serialized cache.disabled" <<<"$err" ||
  fail "demo names the regions there are: $err"

# "The first region" is the file's first, not the first by name.
echo '{"cache": {"zeta": {"backend": "dogpile.cache.memory"}, "alpha": {"backend": "dogpile.cache.memory"}}}' \
  >"$work/order.json"
run demo "$work/order.json"
grep -q "^region cache.zeta on" <<<"$out" || fail "demo runs on the JSON file's first region: $out"
printf '[cache.zeta]\nbackend = dogpile.cache.memory\n[cache.alpha]\nbackend = dogpile.cache.memory\n' \
  >"$work/order.ini"
run --config "$work/order.ini" demo
grep -q "^region cache.zeta on" <<<"$out" || fail "demo runs on the INI file's first region: $out"
run check "$work/order.json"
[ "$(head -1 <<<"$out")" = "cache.zeta: dogpile.cache.memory, expiration never" ] ||
  fail "check lists regions in the file's order: $out"

echo '{"cache": {"big": {"backend": "dogpile.cache.memory", "expiration_time": 1e400}}}' \
  >"$work/huge.json"
run check "$work/huge.json"
[ "$status" -eq 1 ] || fail "a number too large for a double is a config error, not $status"
grep -q "^dogpile: .*huge.json: malformed JSON: .*number overflow" <<<"$err" ||
  fail "naming the file: $err"

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

run plugins --json
[ "$status" -eq 0 ] || fail "plugins --json exits 0, not $status: $err"
python3 - "$work/out" <<'PY' || fail "plugins --json lists name, kind, version, file, compatibility"
import json, sys
plugins = {p["name"]: p for p in json.load(open(sys.argv[1]))}
memory = plugins["dogpile.cache.memory"]
assert memory["kind"] == "backend" and memory["compatible"] and memory["why_not"] is None, memory
assert memory["version"] and memory["file"].endswith(".so"), memory
assert plugins["dogpile.proxy.stats"]["kind"] == "proxy"
wrong = plugins["dogpile.test.wrong_build"]
assert not wrong["compatible"] and "cxx11abi0" in wrong["why_not"], wrong
PY

DOGPILE_LOG_LEVEL=debug run plugins
grep -q "^\[debug\] dogpile\[loader\] found dogpile.cache.memory (backend) in .*\.so" <<<"$err" ||
  fail "DOGPILE_LOG_LEVEL=debug logs each plugin the loader finds: $err"
grep -q "skipping .*: no such directory" <<<"$err" || fail "and each place it skips: $err"
grep -q "^dogpile.cache.memory " <<<"$out" || fail "the log stays out of stdout"
DOGPILE_LOG_LEVEL=chatty run plugins
grep -q "DOGPILE_LOG_LEVEL=chatty is not a level" <<<"$err" || fail "a bad level is reported: $err"
run plugins
[ -z "$err" ] || fail "the loader says nothing at the default level: $err"
# The operator's variable wins over the file's dogpile.log_level.
echo '{"dogpile": {"log_level": "error"}, "cache": {"a": {"backend": "dogpile.cache.memory"}}}' \
  >"$work/quiet.json"
DOGPILE_LOG_LEVEL=debug run check "$work/quiet.json"
grep -q "loaded .*dogpile-memory.so for dogpile.cache.memory" <<<"$err" ||
  fail "DOGPILE_LOG_LEVEL wins over the file's log_level: $err"

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
