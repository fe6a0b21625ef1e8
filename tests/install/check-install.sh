#!/usr/bin/env bash
# The installed SDK is usable on its own: `meson install` into a scratch prefix, then build
# the copyable plugin template against it with pkg-config, install that plugin into the
# plugin directory dogpile.pc names, and have the installed `dogpile` tool find and use it.
set -euo pipefail
src=$(cd "$1" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
prefix=$work/prefix
unset DOGPILE_PLUGIN_PATH

step() { echo "== $*"; }

step "install dogpile-cpp into $prefix"
meson setup "$work/build" "$src" --prefix="$prefix" -Dtests=false >/dev/null
ninja -C "$work/build" -j "$(nproc)" >/dev/null
meson install -C "$work/build" >/dev/null

step "dogpile.pc exposes the plugin directory and the SDK ABI version"
export PKG_CONFIG_PATH
PKG_CONFIG_PATH=$(dirname "$(find "$prefix" -name dogpile.pc | head -n 1)")
plugindir=$(pkg-config --variable=plugindir dogpile)
abi=$(pkg-config --variable=sdk_abi_version dogpile)
expected_abi=$(sed -n 's/^#define DOGPILE_SDK_ABI_VERSION \([0-9]*\)$/\1/p' \
  "$src/sdk/include/dogpile/sdk/export.hpp")
[ "$abi" = "$expected_abi" ] || { echo "sdk_abi_version is '$abi', expected '$expected_abi'"; exit 1; }
for f in "$plugindir/dogpile-memory.so" "$plugindir/dogpile-null.so" \
         "$prefix/include/dogpile/sdk/sdk.hpp" "$prefix/include/dogpile/region.hpp" \
         "$prefix/bin/dogpile-conformance"; do
  [ -f "$f" ] || { echo "not installed: $f"; exit 1; }
done

step "the README's first program builds with nothing but pkg-config's flags (-std=c++20 included) and runs"
# shellcheck disable=SC2046  # pkg-config's output is a list of flags
g++ -o "$work/program" "$src/tests/readme/using_region.cpp" $(pkg-config --cflags --libs dogpile) \
  -Wl,-rpath,"$(pkg-config --variable=libdir dogpile)"
"$work/program" >"$work/program.out"
[ "$(head -n 1 "$work/program.out")" = "42" ] && \
  [ "$(tail -n 1 "$work/program.out")" = "value of a, value of b" ] || {
  echo "the program printed:"; cat "$work/program.out"; exit 1; }

step "the plugin template builds against the installed SDK"
cp -r "$src/sdk/template" "$work/template"
meson setup "$work/template-build" "$work/template" >/dev/null
ninja -C "$work/template-build" >/dev/null

step "the template's plugin passes the conformance kit installed with the SDK"
meson test -C "$work/template-build" --print-errorlogs >/dev/null || {
  cat "$work/template-build/meson-logs/testlog.txt"; exit 1; }
grep -h "passed, 0 failed" "$work/template-build/meson-logs/testlog.txt"
meson install -C "$work/template-build" >/dev/null
[ -f "$plugindir/dogpile-example.so" ] || { echo "template plugin not in $plugindir"; exit 1; }

step "the installed tool finds every plugin without DOGPILE_PLUGIN_PATH"
listing=$("$prefix/bin/dogpile" plugins)
for name in dogpile.cache.memory dogpile.cache.memory_pickle dogpile.cache.null \
            dogpile.cache.redis dogpile.cache.redis_sentinel dogpile.cache.redis_cluster \
            dogpile.cache.memcached dogpile.cache.pylibmc dogpile.cache.bmemcached \
            dogpile.cache.pymemcache dogpile.cache.dbm dogpile.cache.layered example.cache.dict; do
  grep -q "^$name " <<<"$listing" || { echo "$name not listed:"; echo "$listing"; exit 1; }
done

step "the installed tool runs the shipped dbm example (its file in the working directory)"
(cd "$work" && "$prefix/bin/dogpile" --config "$src/configs/dbm.json" ping >/dev/null) ||
  { echo "ping on configs/dbm.json failed"; exit 1; }

step "a region on the third-party plugin works"
cat >"$work/example.json" <<'JSON'
{"cache": {"example": {"backend": "example.cache.dict", "expiration_time": "1s",
                       "arguments": {"max_entries": 100}}}}
JSON
"$prefix/bin/dogpile" demo "$work/example.json" | tee "$work/demo.out" | tail -n 1
grep -q "hits, " "$work/demo.out"
echo "install OK"
