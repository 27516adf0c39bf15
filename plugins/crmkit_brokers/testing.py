"""Throwaway brokers for tests and drills: a NATS server with JetStream and a RabbitMQ node of
one's own, on ports of their own, that a test may stop and start again without touching the
brokers other programs on the machine use.

    server = NatsServer(tmp_path / "nats")
    server.start()
    sink = NatsSink(server.url)
    ...
    server.stop()  # the broker is down
    server.start()  # the same port and store: a restart

Both need the servers installed (``nats-server``; ``rabbitmq-server`` and ``rabbitmqctl``);
``.ci/run`` installs them. A private RabbitMQ node takes tens of seconds to start on a busy
machine (44 s measured at load 18), so the test suite uses only the NATS one; the RabbitMQ
one serves the outage drills of ``bench/events_bench.py``.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path


def free_port() -> int:
    """A TCP port on 127.0.0.1 nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def port_is_open(port: int) -> bool:
    """Whether something accepts connections on 127.0.0.1:``port``."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def _wait(port: int, *, open_: bool, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while port_is_open(port) != open_:
        if time.monotonic() > deadline:
            state = "listen" if open_ else "stop listening"
            raise RuntimeError(f"{what} did not {state} on 127.0.0.1:{port} within {seconds} s")
        time.sleep(0.1)


def _program(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise RuntimeError(f"{name} is not installed (on PATH): .ci/run installs it")
    return path


class NatsServer:
    """``nats-server -a 127.0.0.1 -p <port> -js -sd <store>``, as ``.ci/run`` starts the
    shared one, on a free port of its own."""

    def __init__(self, store: Path, port: int | None = None) -> None:
        self.store = store
        self.port = port or free_port()
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """``nats://127.0.0.1:<port>``."""
        return f"nats://127.0.0.1:{self.port}"

    @property
    def command(self) -> list[str]:
        """The server's command line."""
        port, store = str(self.port), str(self.store)
        return [_program("nats-server"), "-a", "127.0.0.1", "-p", port, "-js", "-sd", store]

    def start(self, timeout: float = 30) -> None:
        """Start the server (again: the same port and store) and wait until it listens."""
        self.store.mkdir(parents=True, exist_ok=True)
        self._process = subprocess.Popen(
            self.command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        _wait(self.port, open_=True, seconds=timeout, what="nats-server")

    def kill(self) -> None:
        """Kill the server (SIGKILL: no goodbye to its clients) and wait until it is gone."""
        if self._process is not None:
            self._process.kill()
            self._process.wait(timeout=30)
            self._process = None
        _wait(self.port, open_=False, seconds=30, what="nats-server")

    def __enter__(self) -> NatsServer:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.kill()


class RabbitMQNode:
    """A RabbitMQ node of its own (node name, AMQP port, distribution port, data folder),
    started with ``rabbitmq-server``; ``stop_app``/``start_app`` take the broker down and up
    again as ``rabbitmqctl`` does for the shared one.

    The server runs as the ``rabbitmq`` user (the Debian package's wrapper switches to it):
    ``base`` is handed to that user, and every folder above it must let others in (a
    ``tempfile.TemporaryDirectory`` is private to its owner: ``chmod 755`` it)."""

    def __init__(self, base: Path, *, name: str = "crmkit-drill", port: int | None = None) -> None:
        self.base = base
        self.port = port or free_port()
        self.node = f"{name}@localhost"
        self._started = False
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """``amqp://guest:guest@127.0.0.1:<port>/``."""
        return f"amqp://guest:guest@127.0.0.1:{self.port}/"

    def _environment(self) -> dict[str, str]:
        self.base.mkdir(parents=True, exist_ok=True)
        config = self.base / "rabbitmq.conf"
        config.write_text(f"listeners.tcp.local = 127.0.0.1:{self.port}\n", encoding="utf-8")
        env_file = self.base / "rabbitmq-env.conf"
        env_file.write_text(f"NODENAME={self.node}\nERL_EPMD_ADDRESS=127.0.0.1\n", "utf-8")
        plugins = self.base / "enabled_plugins"
        plugins.write_text("[].\n", encoding="utf-8")
        if _user_exists("rabbitmq"):  # the server runs as this user: its folder is its own
            for path in (self.base, config, env_file, plugins):
                shutil.chown(path, "rabbitmq")
        return {
            **os.environ,
            "RABBITMQ_CONF_ENV_FILE": str(env_file),
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_CONFIG_FILE": str(config),
            "RABBITMQ_DIST_PORT": str(free_port()),
            "RABBITMQ_MNESIA_BASE": str(self.base / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.base / "log"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(plugins),
        }

    def start(self, timeout: float = 180) -> None:
        """Start the node and wait until it takes AMQP connections (its output goes to
        ``<base>/server.log``)."""
        environment = self._environment()
        with (self.base / "server.log").open("ab") as output:
            process = subprocess.Popen(
                [_program("rabbitmq-server")],
                env=environment,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self._started = True
        self._process = process
        deadline = time.monotonic() + timeout
        while not port_is_open(self.port):
            if process.poll() is not None or time.monotonic() > deadline:
                self._started = process.poll() is None
                log = (self.base / "server.log").read_text("utf-8", "replace")[-2000:]
                raise RuntimeError(f"rabbitmq-server did not start on {self.port}:\n{log}")
            time.sleep(0.2)

    def _ctl(self, *arguments: str) -> None:
        subprocess.run(
            [_program("rabbitmqctl"), "-q", "-n", self.node, *arguments],
            check=True,
            capture_output=True,
            timeout=180,
        )

    def stop_app(self) -> None:
        """Stop the broker application (the node stays up): clients lose their connections."""
        self._ctl("stop_app")
        _wait(self.port, open_=False, seconds=60, what="RabbitMQ")

    def start_app(self) -> None:
        """Start the broker application again and wait until it takes connections."""
        self._ctl("start_app")
        _wait(self.port, open_=True, seconds=120, what="RabbitMQ")

    def kill(self) -> None:
        """Kill the node outright (SIGKILL to every process of this node: the wrapper, the
        Erlang VM and its helpers; no goodbye to its clients, no clean shutdown of its store)
        and wait until the port is closed. :meth:`start` brings it back on the same port and
        store.

        The processes are found by their environment (this node's name and data folder):
        the Debian wrapper starts the server through ``su``, in a session of its own, so
        the process group of the started program does not reach the VM."""
        mine = f"RABBITMQ_MNESIA_BASE={self.base / 'mnesia'}".encode()
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) == os.getpid():
                continue
            try:
                environment = (entry / "environ").read_bytes().split(b"\0")
            except OSError:  # gone meanwhile, or not ours to read
                continue
            if mine in environment:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(entry.name), signal.SIGKILL)
        if self._process is not None:
            with contextlib.suppress(ProcessLookupError):
                self._process.kill()
            self._process.wait(timeout=30)
            self._process = None
        self._started = False
        _wait(self.port, open_=False, seconds=60, what="RabbitMQ")

    def shutdown(self) -> None:
        """Stop the node."""
        if self._started:
            self._ctl("stop")
            self._started = False

    def __enter__(self) -> RabbitMQNode:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.shutdown()


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True
