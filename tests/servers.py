"""Real redis-server and memcached processes for tests: on a free 127.0.0.1 port, in a scratch
directory, ready once they say they listen (no polling), stopped by their PID.

    with running_server("redis") as server:
        server.port, server.arguments   # the backend's arguments to reach it
"""
import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until_ready(process, ready_text):
    """Reads the process's output until a line holds `ready_text`. A process that exits first,
    or says nothing for 10 s (then killed), fails the test. The rest of its output is drained
    by a thread, so that it never blocks writing it."""
    timer = threading.Timer(10, process.kill)
    timer.start()
    try:
        for line in process.stdout:
            if ready_text in line:
                threading.Thread(target=process.stdout.read, daemon=True).start()
                return
    finally:
        timer.cancel()
    raise SystemExit("%s did not start" % process.args[0])


class Server:
    def __init__(self, kind, port, scratch):
        self.kind, self.port, self.scratch = kind, port, scratch
        if kind == "redis":
            self.backend = "dogpile.cache.redis"
            self.command = ["redis-server", "--port", str(port), "--bind", "127.0.0.1",
                            "--save", "", "--appendonly", "no", "--dir", scratch]
            self.ready_text = "Ready to accept connections"
            self.arguments = {"host": "127.0.0.1", "port": port}
        elif kind in ("memcached", "memcached-sasl"):
            # 2 MiB items, so that 1 MiB values fit.
            self.backend = "dogpile.cache.memcached"
            self.command = ["memcached", "-l", "127.0.0.1", "-p", str(port), "-U", "0",
                            "-I", "2m", "-vv"]
            if os.geteuid() == 0:
                self.command += ["-u", "root"]
            self.ready_text = "server listening"
            self.arguments = {"url": "127.0.0.1:%d" % port, "item_size_max": 2 * 1024 * 1024}
            if kind == "memcached-sasl":
                # PLAIN credentials of one user, in a sasldb saslpasswd2 writes.
                self.backend = "dogpile.cache.bmemcached"
                db = os.path.join(scratch, "sasldb2")
                subprocess.run(["saslpasswd2", "-a", "memcached", "-c", "-p", "-f", db, "tester"],
                               input=b"secret-pw", check=True)
                with open(os.path.join(scratch, "memcached.conf"), "w") as conf:
                    conf.write("mech_list: plain\nsasldb_path: %s\n" % db)
                self.command.append("-S")
                self.environment = dict(os.environ, SASL_CONF_PATH=scratch)
                self.arguments.update(username="tester", password="secret-pw")
        elif kind == "sentinel":
            # A Redis Sentinel; running_server writes its sentinel.conf.
            self.backend = "dogpile.cache.redis_sentinel"
            self.command = ["redis-server", os.path.join(scratch, "sentinel.conf"), "--sentinel"]
            self.ready_text = "+monitor master"
            self.arguments = {"sentinels": ["127.0.0.1:%d" % port], "service_name": "mymaster"}
        else:
            raise ValueError("no server of kind %r" % kind)
        self.process = None

    environment = None  # the test's own, unless a kind needs more

    def start(self):
        # memcached's -vv goes to stderr: both streams are read.
        self.process = subprocess.Popen(self.command, stdout=subprocess.PIPE,
                                        stderr=subprocess.STDOUT, cwd=self.scratch, text=True,
                                        env=self.environment,
                                        errors="replace")
        wait_until_ready(self.process, self.ready_text)

    def stop(self):
        if self.process:
            self.process.kill()
            self.process.wait()
            self.process = None


def write_sentinel_conf(scratch, port, master_port):
    with open(os.path.join(scratch, "sentinel.conf"), "w") as conf:
        conf.write("port %d\nbind 127.0.0.1\ndir %s\n"
                   "sentinel monitor mymaster 127.0.0.1 %d 1\n"
                   "sentinel down-after-milliseconds mymaster 1000\n" % (port, scratch, master_port))


def cluster_port():
    """A free port whose cluster bus port, 10000 above, exists and is free too."""
    while True:
        port = free_port()
        if port + 10000 > 65535:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        return port


class ClusterServers:
    """The masters of a Redis Cluster of three, as one server: `arguments` name them all."""

    def __init__(self, nodes):
        self.nodes = nodes
        self.kind, self.port = "redis-cluster", nodes[0].port
        self.backend = "dogpile.cache.redis_cluster"
        self.arguments = {"startup_nodes": ["127.0.0.1:%d" % n.port for n in nodes]}


def cluster_state_ok(port):
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b"CLUSTER INFO\r\n")
        return b"cluster_state:ok" in s.recv(65536)


@contextlib.contextmanager
def running_cluster():
    with contextlib.ExitStack() as stack:
        nodes = []
        for _ in range(3):
            scratch = tempfile.mkdtemp(prefix="dogpile-cluster-")
            server = Server("redis", cluster_port(), scratch)
            server.command += ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                               "--cluster-node-timeout", "1000"]
            nodes.append(stack.enter_context(started(server, scratch)))
        subprocess.run(["redis-cli", "--cluster", "create"] +
                       ["127.0.0.1:%d" % n.port for n in nodes] +
                       ["--cluster-replicas", "0", "--cluster-yes"],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True,
                       timeout=60)
        deadline = time.monotonic() + 30
        while not all(cluster_state_ok(n.port) for n in nodes):
            if time.monotonic() > deadline:
                raise SystemExit("the cluster did not reach cluster_state:ok")
            time.sleep(0.05)
        yield ClusterServers(nodes)


@contextlib.contextmanager
def running_server(kind):
    """kind: redis, memcached, memcached-sasl, redis-sentinel (a master and one sentinel
    that watches it as the service "mymaster": the server yielded is the sentinel), or
    redis-cluster (three masters)."""
    if kind == "redis-cluster":
        with running_cluster() as cluster:
            yield cluster
        return
    if kind == "redis-sentinel":
        with running_server("redis") as master:
            scratch = tempfile.mkdtemp(prefix="dogpile-sentinel-")
            port = free_port()
            write_sentinel_conf(scratch, port, master.port)
            with started(Server("sentinel", port, scratch), scratch) as sentinel:
                yield sentinel
        return
    scratch = tempfile.mkdtemp(prefix="dogpile-%s-" % kind)
    with started(Server(kind, free_port(), scratch), scratch) as server:
        yield server


@contextlib.contextmanager
def started(server, scratch):
    try:
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(scratch, ignore_errors=True)
