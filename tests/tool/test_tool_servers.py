#!/usr/bin/python3
"""The dogpile tool run as a process, as an operator runs it, against real servers: ping and
check --connect, get/set/delete, bench, demo, on redis and memcached; a server that stops;
bytes that are no dogpile value; stats read from an application serving metrics_text().

usage: test_tool_servers.py TOOL METRICS_APP
"""
import json
import os
import pty
import re
import socket
import subprocess
import sys
import tempfile
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from servers import free_port, running_server, wait_until_ready  # noqa: E402

TOOL, METRICS_APP = sys.argv[1], sys.argv[2]
failures = []


def check(condition, what, result=None):
    if not condition:
        detail = ""
        if result is not None:
            detail = "\n  exit %d\n  stdout: %s\n  stderr: %s" % (
                result.returncode, result.stdout.strip(), result.stderr.strip())
        failures.append(what + detail)
        print("FAIL: " + what + detail)


def run(*args, stdin=None):
    return subprocess.run([TOOL, *args], capture_output=True, text=True, input=stdin, timeout=120)


def raw_client(server):
    """A plain client of the server, to write bytes dogpile did not."""
    if server.kind == "redis":
        import redis
        client = redis.Redis(host="127.0.0.1", port=server.port)
        return client.set, lambda prefix: [k.decode() for k in client.keys(prefix + "*")]
    import memcache
    client = memcache.Client(["127.0.0.1:%d" % server.port])

    def keys(prefix):
        """The keys memcached holds that start with `prefix` (its LRU crawler lists them)."""
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as s:
            s.sendall(b"lru_crawler metadump all\r\n")
            dump = b""
            while not dump.endswith(b"END\r\n"):
                chunk = s.recv(65536)
                if not chunk:
                    break
                dump += chunk
        found = [urllib.parse.unquote(m.decode()) for m in re.findall(rb"^key=(\S+)", dump, re.M)]
        return [k for k in found if k.startswith(prefix)]
    return client.set, keys


def test_backend(kind, scratch):
    with running_server(kind) as server:
        config = os.path.join(scratch, kind + ".json")
        with open(config, "w") as f:
            json.dump({"cache": {"off": {"backend": "dogpile.cache.null"},
                                 "shared": {"backend": server.backend, "expiration_time": 60,
                                            "arguments": server.arguments}}}, f)
        tool = lambda *args, **kw: run("--config", config, *args, **kw)  # noqa: E731
        name = "%s: " % kind

        r = tool("ping")
        check(r.returncode == 0, name + "ping exits 0", r)
        check(re.search(r"^cache\.shared +%s +ok  set [0-9.]+ ms, get [0-9.]+ ms, delete "
                        % re.escape(server.backend), r.stdout, re.M),
              name + "ping reports the latency of each call", r)
        check(re.search(r"^cache\.off +dogpile\.cache\.null +ok, stores no values", r.stdout, re.M),
              name + "ping says the null backend stores nothing", r)
        r = tool("check", "--connect")
        check(r.returncode == 0 and "2 region(s) OK" in r.stdout and "ok  set" in r.stdout,
              name + "check --connect configures and pings every region", r)

        value = {"name": "h\u00e9", "scores": [1, 2.5], "ok": True}
        r = tool("set", "user:1", json.dumps(value))
        check(r.returncode == 0 and r.stdout == "", name + "set exits 0, silently", r)
        r = tool("get", "user:1")
        check(r.returncode == 0, name + "get exits 0", r)
        check(r.stdout and json.loads(r.stdout.splitlines()[0]) == value,
              name + "get shows the value as JSON on its first line", r)
        check(re.search(r"^  region   cache\.shared \(%s\)$" % re.escape(server.backend),
                        r.stdout, re.M), name + "get names the region (the first storing one)", r)
        check(re.search(r"^  expires  in 5\d\.\d+ s \(expiration time 60\.0 s\)$", r.stdout, re.M),
              name + "get says when the value expires", r)
        check("raw" not in r.stdout, name + "get shows no raw bytes unless asked", r)
        r = tool("get", "user:1", "--json", "--raw")
        shown = json.loads(r.stdout) if r.returncode == 0 else {}
        check(shown.get("value") == value and shown.get("expired") is False
              and 0 <= shown.get("age", -1) < 60 and shown.get("region") == "cache.shared",
              name + "get --json gives value, age, expiry", r)
        check(shown.get("raw", "").startswith("b'{\"ct\": ") and "\\\\u00e9" in shown["raw"],
              name + "--raw gives the wire bytes (metadata|payload)", r)

        r = tool("set", "old", "42", "--ttl", "0")
        check(r.returncode == 0, name + "set --ttl 0 exits 0", r)
        r = tool("get", "old")
        check(r.returncode == 0 and re.search(r"expires  expired [0-9.]+ s ago", r.stdout),
              name + "a value set with --ttl 0 reads as expired", r)
        r = tool("set", "old", "42", "--ttl", "61")
        check(r.returncode == 2 and "--ttl must be between 0.0 and 60.0" in r.stderr,
              name + "--ttl beyond the region's expiration time is refused", r)
        r = tool("set", "bad", "{not json")
        check(r.returncode == 2 and "not JSON" in r.stderr, name + "set refuses text not JSON", r)

        write_raw, keys = raw_client(server)
        write_raw("garbage", b"\x00\xffnot a dogpile value")
        r = tool("get", "garbage", "--raw")
        check(r.returncode == 1 and "no dogpile value" in r.stderr
              and r.stdout.strip() == "b'\\x00\\xffnot a dogpile value'",
              name + "get of foreign bytes fails and --raw shows them", r)

        r = tool("delete", "user:1", "old", "never-set")
        check(r.returncode == 0, name + "delete exits 0, absent keys included", r)
        r = tool("get", "user:1")
        check(r.returncode == 3 and "no value in region cache.shared" in r.stderr,
              name + "get of a deleted key exits 3", r)

        r = tool("bench", "--seconds", "0.3", "--threads", "2", "--keys", "50", "--json")
        check(r.returncode == 0, name + "bench exits 0", r)
        if r.returncode == 0:
            figures = json.loads(r.stdout)
            for op in ("get", "set", "get_or_create"):
                f = figures["operations"][op]
                check(f["operations"] > 0 and f["errors"] == 0
                      and 0 < f["p50_us"] <= f["p99_us"] <= f["p999_us"],
                      name + "bench measures %s: %s" % (op, f))
        r = tool("demo")
        check(r.returncode == 0 and r.stdout.startswith("region cache.shared on " + server.backend),
              name + "demo runs on the first region storing values", r)
        check(keys("dogpile-") == [],
              name + "bench and demo leave no key of theirs: %s" % keys("dogpile-")[:5])
        check(len(keys("garbage")) == 1, name + "(the server's keys are listed)")

        server.stop()
        r = tool("ping")
        check(r.returncode == 1, name + "ping of a stopped server exits 1", r)
        check(re.search(r"^cache\.shared .* FAILED: .*127\.0\.0\.1:%d" % server.port, r.stdout,
                        re.M), name + "and names the server that does not answer", r)
        check("did not answer" in r.stderr, name + "and says so on stderr", r)
        r = tool("get", "user:1")
        check(r.returncode == 1 and "127.0.0.1:%d" % server.port in r.stderr,
              name + "get on a stopped server exits 1 naming it", r)


def test_bench_progress():
    """A progress line on a terminal, none otherwise; stdout holds only the result."""
    master, slave = pty.openpty()
    with subprocess.Popen([TOOL, "bench", "--seconds", "0.6", "--threads", "1"],
                          stdout=subprocess.PIPE, stderr=slave, text=True) as p:
        os.close(slave)
        out = p.stdout.read()
        p.wait()
        progress = b""
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:
                break
            if not chunk:
                break
            progress += chunk
        os.close(master)
    check(p.returncode == 0 and re.search(rb"\r  set .* ops/s", progress),
          "bench shows a progress line on a terminal: %r" % progress[:200])
    check("\r" not in out and out.startswith("region cache.demo on dogpile.cache.memory"),
          "bench's stdout holds only the result: %r" % out[:200])
    r = run("bench", "--seconds", "0.1", "--threads", "1")
    check(r.returncode == 0 and r.stderr == "", "no progress line when stderr is no terminal", r)
    check(re.search(r"^get_or_create +\d+ ", r.stdout, re.M), "bench prints a row per operation", r)


def test_stats(scratch):
    port = free_port()
    app = subprocess.Popen([METRICS_APP, str(port)], stdout=subprocess.PIPE, text=True)
    try:
        wait_until_ready(app, "metrics on http://127.0.0.1:")
        url = "http://127.0.0.1:%d/metrics" % port
        r = run("stats", url)
        check(r.returncode == 0, "stats reads an application's metrics over HTTP", r)
        check(re.search(r"^region cache\.app\n  lookups 6, hits 3, misses 3, hit ratio 50\.0 %\n"
                        r"  sets 3, deletes 0, errors 0$", r.stdout, re.M),
              "stats shows lookups, hit ratio, sets", r)
        check(re.search(r"^  get +6 +[0-9.]+ [mu]s +[0-9.]+ [mu]s", r.stdout, re.M),
              "stats shows each call's latency", r)
        r = run("stats", url, "--json")
        shown = json.loads(r.stdout) if r.returncode == 0 else {}
        check(shown.get("cache.app", {}).get("hit_ratio") == 0.5
              and shown["cache.app"]["operations"]["set"]["calls"] == 3,
              "stats --json gives the same figures", r)
        text = urllib.request.urlopen(url, timeout=10).read().decode()
        path = os.path.join(scratch, "metrics.txt")
        with open(path, "w") as f:
            f.write(text)
        r = run("stats", path)
        check(r.returncode == 0 and "hit ratio 50.0 %" in r.stdout, "stats reads a file", r)
        r = run("stats", "-", stdin=text)
        check(r.returncode == 0 and "hit ratio 50.0 %" in r.stdout, "stats reads stdin", r)
    finally:
        app.kill()
        app.wait()
    r = run("stats", "http://10.1.2.3:9090/metrics")
    check(r.returncode == 2 and "loopback only" in r.stderr, "stats refuses other hosts", r)
    r = run("stats", "http://127.0.0.1:%d/metrics" % port)
    check(r.returncode == 1 and "Connection refused" in r.stderr,
          "stats on a port nobody serves exits 1", r)
    with open(path, "w") as f:
        f.write("# nothing\nnot{a=\"line\n")
    r = run("stats", path)
    check(r.returncode == 1 and "metrics.txt:2: not a line" in r.stderr,
          "stats names the line it cannot read", r)


def main():
    with tempfile.TemporaryDirectory(prefix="dogpile-tool-") as scratch:
        for kind in ("redis", "memcached"):
            test_backend(kind, scratch)
        test_bench_progress()
        test_stats(scratch)
    if failures:
        print("%d check(s) failed" % len(failures))
        return 1
    print("the tool behaves against real servers")
    return 0


if __name__ == "__main__":
    sys.exit(main())
