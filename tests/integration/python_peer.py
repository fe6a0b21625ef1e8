#!/usr/bin/python3
"""The Python dogpile.cache side of the interoperability tests.

A region configured as a Python service sharing a server with a C++ one would be: JSON
serialization, and for Redis the distributed lock.

usage: python_peer.py BACKEND WHERE set KEY JSON
       python_peer.py BACKEND WHERE get KEY        prints the value as JSON, or NO_VALUE
       python_peer.py BACKEND WHERE hold KEY SECONDS JSON
           takes KEY's dogpile lock, prints "locked", waits, stores JSON under KEY, releases
       python_peer.py BACKEND WHERE hold_until KEY READ_FD WRITE_FD
           closes WRITE_FD, takes KEY's dogpile lock, prints "locked", holds it until READ_FD
           reaches its end (the test closes its end of the pipe; at most 60 s), releases
       python_peer.py BACKEND WHERE try KEY
           tries KEY's dogpile lock without waiting; prints "acquired" or "busy"
       python_peer.py BACKEND WHERE create KEY JSON
           get_or_create(KEY) with a creator returning JSON; prints the value and "created"
           or "read"
BACKEND: redis, pylibmc or memcached (python-memcache) with WHERE the port on 127.0.0.1,
redis_sentinel with WHERE a sentinel's port (the service "mymaster"), or dbm with WHERE the
file. Keys given to the memcached backends go through dogpile's
sha1_mangle_key, as a service sharing keys with spaces would configure.
"""
import json
import os
import select
import sys
import time

from dogpile.cache import make_region
from dogpile.cache.api import NO_VALUE
from dogpile.cache.util import sha1_mangle_key


def region(backend, where):
    if backend == "dbm":
        name = "dogpile.cache.dbm"
        arguments = {"filename": where}
        mangler = None
    elif backend == "redis":
        name = "dogpile.cache.redis"
        arguments = {
            "host": "127.0.0.1",
            "port": int(where),
            "distributed_lock": True,
            "thread_local_lock": False,
            "lock_timeout": 30,
        }
        mangler = None
    elif backend == "redis_sentinel":
        name = "dogpile.cache.redis_sentinel"
        arguments = {"sentinels": [["127.0.0.1", int(where)]], "lock_timeout": 30}
        mangler = None
    else:
        name = "dogpile.cache." + backend
        arguments = {"url": ["127.0.0.1:%s" % where]}
        mangler = sha1_mangle_key
    return make_region(
        key_mangler=mangler,
        # json.dumps writes NaN and Infinity, and json.loads reads them back.
        serializer=lambda value: json.dumps(value).encode("utf-8"),
        deserializer=lambda data: json.loads(data),
    ).configure(name, arguments=arguments)


def main(argv):
    backend, where, command, key = argv[1], argv[2], argv[3], argv[4]
    cache = region(backend, where)
    if command == "set":
        cache.set(key, json.loads(argv[5]))
    elif command == "get":
        value = cache.get(key)
        print("NO_VALUE" if value is NO_VALUE else json.dumps(value, sort_keys=True))
    elif command == "hold":
        mutex = cache.backend.get_mutex(key)
        mutex.acquire()
        print("locked", flush=True)
        time.sleep(float(argv[5]))
        cache.set(key, json.loads(argv[6]))
        mutex.release()
    elif command == "hold_until":
        os.close(int(argv[6]))
        mutex = cache.backend.get_mutex(key)
        mutex.acquire()
        print("locked", flush=True)
        # Bounded: a test that never closes its end fails here instead of hanging.
        while True:
            ready, _, _ = select.select([int(argv[5])], [], [], 60)
            if not ready:
                raise SystemExit("hold_until: the test never released " + key)
            if not os.read(int(argv[5]), 1):
                break
        mutex.release()
    elif command == "try":
        mutex = cache.backend.get_mutex(key)
        if mutex.acquire(False):
            print("acquired")
            mutex.release()
        else:
            print("busy")
    elif command == "create":
        created = []
        value = cache.get_or_create(key, lambda: created.append(1) or json.loads(argv[5]))
        print(json.dumps(value, sort_keys=True), "created" if created else "read")
    else:
        raise SystemExit("unknown command " + command)


if __name__ == "__main__":
    main(sys.argv)
