#!/usr/bin/env bash
# Compiles each program given, which the library must refuse at compile time, and checks that
# it is refused with the message its first line names (`// expect: TEXT`), and with nothing
# else first. Usage: expect_refused.sh COMPILER SOURCE_ROOT PROGRAM...
set -uo pipefail
compiler=$1
root=$2
shift 2
failed=0
for program in "$@"; do
  expected=$(sed -n '1s|^// expect: ||p' "$program")
  output=$("$compiler" -std=c++20 -fsyntax-only -I"$root/core/include" -I"$root/sdk/include" \
    "$program" 2>&1)
  status=$?
  first_error=$(grep -m 1 "error:" <<<"$output")
  if [ $status -eq 0 ]; then
    echo "FAIL $(basename "$program"): compiled; it should be refused"
    failed=1
  elif [[ "$first_error" != *"$expected"* ]]; then
    echo "FAIL $(basename "$program"): the first error is not '$expected':"
    echo "$first_error"
    failed=1
  else
    echo "ok $(basename "$program"): $first_error"
  fi
done
exit $failed
