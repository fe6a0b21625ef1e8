#!/usr/bin/env bash
# The conformance kit can fail: on tests/plugins/careless_backend.cpp it reports exactly the
# broken points, exits 1, and still runs every other check. Usage: this KIT
set -uo pipefail
out=$("$1" test.cache.careless 2>/dev/null)
status=$?
echo "$out"
fail() { echo "expected: $*"; exit 1; }
[ "$status" -eq 1 ] || fail "exit status 1, got $status"
for check in "bytes family: binary-safe, empty values" \
             "multi operations: aligned, missing, duplicates, empty" \
             "values: the declared size limit"; do
  grep -q "^FAIL $check: " <<<"$out" || fail "FAIL $check"
done
grep -q "^PASS remove: idempotent$" <<<"$out" || fail "PASS remove: idempotent"
grep -Eq "^[0-9]+ passed, [1-9][0-9]* failed, [0-9]+ skipped$" <<<"$out" || fail "a summary counting the failures"
"$1" no.such.backend >/dev/null 2>&1
[ $? -eq 2 ] || fail "exit status 2 for a backend that does not exist"
echo "the kit fails a careless backend as it should"
