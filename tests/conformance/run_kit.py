#!/usr/bin/python3
"""Runs dogpile-conformance against one shipped backend, as CI does.

usage: run_kit.py KIT BACKEND [KIT OPTIONS...]

For dogpile.cache.redis and dogpile.cache.memcached it first starts the server on a free
127.0.0.1 port in a scratch directory (memcached with 2 MiB items, so 1 MiB values fit), runs
the kit with arguments that turn the distributed lock on, then stops the server by its PID and
removes the directory. The kit's output and exit status are passed through.
"""
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until_listening(server, port):
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit("%s exited at start" % server.args[0])
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.01)
    raise SystemExit("%s did not listen on port %d" % (server.args[0], port))


def server_for(backend, port, scratch):
    """The server command and the kit's --arguments for `backend`, or (None, None)."""
    if backend == "dogpile.cache.redis":
        return (["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                 "--appendonly", "no", "--dir", scratch, "--logfile", scratch + "/redis.log"],
                {"host": "127.0.0.1", "port": port, "distributed_lock": True,
                 "thread_local_lock": False, "lock_timeout": 1})
    if backend == "dogpile.cache.memcached":
        command = ["memcached", "-l", "127.0.0.1", "-p", str(port), "-U", "0", "-I", "2m"]
        if os.geteuid() == 0:
            command += ["-u", "root"]
        return (command, {"url": "127.0.0.1:%d" % port, "distributed_lock": True,
                          "lock_timeout": 1, "item_size_max": 2 * 1024 * 1024})
    return None, None


def main(argv):
    kit, backend, options = argv[1], argv[2], argv[3:]
    scratch = tempfile.mkdtemp(prefix="dogpile-kit-")
    server = None
    try:
        port = free_port()
        command, arguments = server_for(backend, port, scratch)
        if command:
            server = subprocess.Popen(command, stdout=subprocess.DEVNULL, cwd=scratch)
            wait_until_listening(server, port)
            options = ["--arguments", json.dumps(arguments)] + options
        return subprocess.call([kit, backend] + options)
    finally:
        if server:
            server.kill()
            server.wait()
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
