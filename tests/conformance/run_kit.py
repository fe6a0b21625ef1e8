#!/usr/bin/python3
"""Runs dogpile-conformance against one shipped backend, as CI does.

usage: run_kit.py KIT BACKEND [KIT OPTIONS...]

For the server backends (Redis, memcached and its family's names; bmemcached's memcached
asks for SASL credentials; dogpile.cache.layered is on Redis; redis_sentinel gets a master
and a sentinel, redis_cluster a cluster of three masters) it first starts the server (see
tests/servers.py), runs the kit with arguments that turn the distributed lock on, then stops
the server. dogpile.cache.dbm gets a file in a scratch directory. The kit's output and exit
status are passed through; with the lock on, a skipped check of the backend's mutex is a
failure (the lock must be there to be checked).
"""
import contextlib
import json
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from servers import running_server  # noqa: E402

SERVERS = {"dogpile.cache.redis": ("redis", {"distributed_lock": True,
                                             "thread_local_lock": False, "lock_timeout": 1}),
           "dogpile.cache.memcached": ("memcached", {"distributed_lock": True,
                                                     "lock_timeout": 1}),
           "dogpile.cache.pylibmc": ("memcached", {"distributed_lock": True, "lock_timeout": 1,
                                                   "binary": True,
                                                   "behaviors": {"tcp_nodelay": True,
                                                                 "ketama": True}}),
           "dogpile.cache.bmemcached": ("memcached-sasl", {"distributed_lock": True,
                                                           "lock_timeout": 1}),
           "dogpile.cache.pymemcache": ("memcached", {"distributed_lock": True,
                                                      "lock_timeout": 1,
                                                      "enable_retry_client": True}),
           "dogpile.cache.redis_sentinel": ("redis-sentinel", {"distributed_lock": True,
                                                              "lock_timeout": 1}),
           "dogpile.cache.redis_cluster": ("redis-cluster", {"distributed_lock": True,
                                                            "thread_local_lock": False,
                                                            "lock_timeout": 1}),
           "dogpile.cache.layered": ("redis", {"distributed_lock": True,
                                               "thread_local_lock": False, "lock_timeout": 1})}


def backend_arguments(backend, server_arguments, lock_arguments):
    """The arguments that reach the server; dogpile.cache.layered gives them to its L2."""
    arguments = dict(server_arguments, **lock_arguments)
    if backend == "dogpile.cache.layered":
        return {"l2_backend": "dogpile.cache.redis", "l2_arguments": arguments,
                "channel": "dogpile:conformance"}
    return arguments


def main(argv):
    kit, backend, options = argv[1], argv[2], argv[3:]
    kind, lock_arguments = SERVERS.get(backend, (None, None))
    if backend == "dogpile.cache.dbm":
        # A file of its own, in a directory removed afterwards.
        with tempfile.TemporaryDirectory(prefix="dogpile-dbm-") as scratch:
            filename = os.path.join(scratch, "cache.db")
            return run([kit, backend, "--arguments", json.dumps({"filename": filename})] +
                       options, locked=True, expiring=False)
    with running_server(kind) if kind else contextlib.nullcontext() as server:
        if server:
            arguments = backend_arguments(backend, server.arguments, lock_arguments)
            options = ["--arguments", json.dumps(arguments)] + options
        return run([kit, backend] + options, locked=bool(server))


def run(command, locked, expiring=True):
    """Runs the kit; with `locked`, a skipped check of the mutex fails the run (except its
    expiry when the locks are not `expiring`: those die with their holder's process)."""
    result = subprocess.run(command, stdout=subprocess.PIPE, text=True)
    sys.stdout.write(result.stdout)
    skipped = [line for line in result.stdout.splitlines() if line.startswith("SKIP mutex:")
               and (expiring or "has_lock_timeout() is false" not in line)]
    if locked and skipped:
        print("run_kit: the backend's lock is on, yet its checks were skipped:\n  " +
              "\n  ".join(skipped))
        return 1
    return result.returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv))
