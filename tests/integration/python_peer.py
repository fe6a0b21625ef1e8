#!/usr/bin/python3
"""The Python dogpile.cache side of the Redis interoperability test.

A region configured as a Python service sharing a Redis with a C++ one would be: the redis
backend, JSON serialization, the distributed lock.

usage: python_peer.py PORT set KEY JSON
       python_peer.py PORT get KEY            prints the value as JSON, or NO_VALUE
       python_peer.py PORT hold KEY SECONDS JSON
           takes KEY's dogpile lock, prints "locked", waits, stores JSON under KEY, releases
"""
import json
import sys
import time

from dogpile.cache import make_region
from dogpile.cache.api import NO_VALUE


def region(port):
    return make_region(
        serializer=lambda value: json.dumps(value).encode("utf-8"),
        deserializer=lambda data: json.loads(data),
    ).configure(
        "dogpile.cache.redis",
        arguments={
            "host": "127.0.0.1",
            "port": port,
            "distributed_lock": True,
            "thread_local_lock": False,
            "lock_timeout": 30,
        },
    )


def main(argv):
    port, command, key = int(argv[1]), argv[2], argv[3]
    cache = region(port)
    if command == "set":
        cache.set(key, json.loads(argv[4]))
    elif command == "get":
        value = cache.get(key)
        print("NO_VALUE" if value is NO_VALUE else json.dumps(value, sort_keys=True))
    elif command == "hold":
        mutex = cache.backend.get_mutex(key)
        mutex.acquire()
        print("locked", flush=True)
        time.sleep(float(argv[4]))
        cache.set(key, json.loads(argv[5]))
        mutex.release()
    else:
        raise SystemExit("unknown command " + command)


if __name__ == "__main__":
    main(sys.argv)
