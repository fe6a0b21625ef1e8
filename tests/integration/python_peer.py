#!/usr/bin/python3
"""The Python dogpile.cache side of the interoperability tests.

A region configured as a Python service sharing a server with a C++ one would be: JSON
serialization, and for Redis the distributed lock.

usage: python_peer.py BACKEND PORT set KEY JSON
       python_peer.py BACKEND PORT get KEY        prints the value as JSON, or NO_VALUE
       python_peer.py BACKEND PORT hold KEY SECONDS JSON
           takes KEY's dogpile lock, prints "locked", waits, stores JSON under KEY, releases
       python_peer.py BACKEND PORT create KEY JSON
           get_or_create(KEY) with a creator returning JSON; prints the value and "created"
           or "read"
BACKEND: redis, pylibmc or memcached (python-memcache). Keys given to the memcached backends
go through dogpile's sha1_mangle_key, as a service sharing keys with spaces would configure.
"""
import json
import sys
import time

from dogpile.cache import make_region
from dogpile.cache.api import NO_VALUE
from dogpile.cache.util import sha1_mangle_key


def region(backend, port):
    if backend == "redis":
        name = "dogpile.cache.redis"
        arguments = {
            "host": "127.0.0.1",
            "port": port,
            "distributed_lock": True,
            "thread_local_lock": False,
            "lock_timeout": 30,
        }
        mangler = None
    else:
        name = "dogpile.cache." + backend
        arguments = {"url": ["127.0.0.1:%d" % port]}
        mangler = sha1_mangle_key
    return make_region(
        key_mangler=mangler,
        # json.dumps writes NaN and Infinity, and json.loads reads them back.
        serializer=lambda value: json.dumps(value).encode("utf-8"),
        deserializer=lambda data: json.loads(data),
    ).configure(name, arguments=arguments)


def main(argv):
    backend, port, command, key = argv[1], int(argv[2]), argv[3], argv[4]
    cache = region(backend, port)
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
    elif command == "create":
        created = []
        value = cache.get_or_create(key, lambda: created.append(1) or json.loads(argv[5]))
        print(json.dumps(value, sort_keys=True), "created" if created else "read")
    else:
        raise SystemExit("unknown command " + command)


if __name__ == "__main__":
    main(sys.argv)
