#!/usr/bin/python3
"""Runs dogpile-conformance against one shipped backend, as CI does.

usage: run_kit.py KIT BACKEND [KIT OPTIONS...]

For dogpile.cache.redis and dogpile.cache.memcached it first starts the server on a free
127.0.0.1 port in a scratch directory (memcached with 2 MiB items, so 1 MiB values fit) and
reads its output until it says it listens, runs the kit with arguments that turn the
distributed lock on, then stops the server by its PID and removes the directory. The kit's output and exit status are passed through.
"""
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until_ready(server, ready_text):
    """Reads the server's output until it announces it listens: no polling. A server that
    exits first, or says nothing for 10 s (then killed), fails the run."""
    timer = threading.Timer(10, server.kill)
    timer.start()
    try:
        for line in server.stdout:
            if ready_text in line:
                return
    finally:
        timer.cancel()
    raise SystemExit("%s did not start" % server.args[0])


def server_for(backend, port, scratch):
    """The server command, the line it prints once listening, and the kit's --arguments for
    `backend`; or Nones."""
    if backend == "dogpile.cache.redis":
        return (["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                 "--appendonly", "no", "--dir", scratch],
                "Ready to accept connections",
                {"host": "127.0.0.1", "port": port, "distributed_lock": True,
                 "thread_local_lock": False, "lock_timeout": 1})
    if backend == "dogpile.cache.memcached":
        command = ["memcached", "-l", "127.0.0.1", "-p", str(port), "-U", "0", "-I", "2m", "-vv"]
        if os.geteuid() == 0:
            command += ["-u", "root"]
        return (command, "server listening", {"url": "127.0.0.1:%d" % port, "distributed_lock": True,
                          "lock_timeout": 1, "item_size_max": 2 * 1024 * 1024})
    return None, None, None


def main(argv):
    kit, backend, options = argv[1], argv[2], argv[3:]
    scratch = tempfile.mkdtemp(prefix="dogpile-kit-")
    server = None
    try:
        port = free_port()
        command, ready_text, arguments = server_for(backend, port, scratch)
        if command:
            # The server's output (memcached's -vv goes to stderr) is read until it is ready,
            # then drained by a thread so that the server never blocks writing it.
            server = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                      cwd=scratch, text=True, errors="replace")
            wait_until_ready(server, ready_text)
            threading.Thread(target=server.stdout.read, daemon=True).start()
            options = ["--arguments", json.dumps(arguments)] + options
        return subprocess.call([kit, backend] + options)
    finally:
        if server:
            server.kill()
            server.wait()
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
