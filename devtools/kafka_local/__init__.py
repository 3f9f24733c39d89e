"""A real single-node Apache Kafka 4.x broker (KRaft) run from Maven Central jars.

No Docker engine runs on these machines, so tests and local runs use the genuine broker:
``pom.xml`` beside this file lists ``org.apache.kafka:kafka_2.13`` plus a log4j2 binding,
``mvn dependency:copy-dependencies`` copies the jars once into a cache, and ``java -cp
"libs/*" kafka.Kafka server.properties`` runs it, bound to 127.0.0.1 only.

Layout of a data dir managed here::

    data_dir/
      server.properties   regenerated on every start
      broker.json         state file: pid, ports, bootstrap (present while running)
      storage.json        which storage subdir / controller port was used last
      kraft-c<PORT>/      log.dirs, formatted for controller port PORT
      kafka.out           JVM stdout/stderr (WARN+ console log, crashes)
      server.log          broker INFO log (log4j2.xml)
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from events.errors import JiaheError

__all__ = [
    "KAFKA_VERSION",
    "BrokerInfo",
    "KafkaLocalError",
    "ensure_jars",
    "is_ready",
    "start",
    "status",
    "stop",
]

_HERE = Path(__file__).resolve().parent
POM_PATH = _HERE / "pom.xml"
LOG4J_CONFIG = _HERE / "log4j2.xml"
HOST = "127.0.0.1"

_STATE_FILE = "broker.json"
_STORAGE_FILE = "storage.json"
_LOCK_FILE = ".kafka_local.lock"
_PROPS_FILE = "server.properties"
_CONSOLE_LOG = "kafka.out"
_SERVER_LOG = "server.log"
_STAMP_FILE = ".jiahe-complete"
_MAIN_CLASS = "kafka.Kafka"
_TOOL_HINTS = {
    "mvn": "install Maven (apt-get install maven)",
    "java": "install Java 17+ (apt-get install openjdk-17-jre-headless)",
}

# Popen handles of brokers started by this process: kept so they can be reaped (no
# zombies, no "subprocess still running" ResourceWarning when the handle is dropped).
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


class KafkaLocalError(JiaheError, RuntimeError):
    """The local broker could not be fetched, started or reached; the message says why."""


@dataclass(frozen=True)
class BrokerInfo:
    """A running broker: where clients connect and where to look when it misbehaves."""

    bootstrap: str
    pid: int
    data_dir: Path
    log_path: Path
    port: int
    controller_port: int

    def to_json(self) -> str:
        """Serialise for the state file (paths as strings)."""
        raw = asdict(self)
        raw["data_dir"] = str(self.data_dir)
        raw["log_path"] = str(self.log_path)
        return json.dumps(raw, indent=2)

    @classmethod
    def from_json(cls, text: str) -> BrokerInfo:
        """Parse a state file written by :meth:`to_json`."""
        raw = json.loads(text)
        return cls(
            bootstrap=str(raw["bootstrap"]),
            pid=int(raw["pid"]),
            data_dir=Path(raw["data_dir"]),
            log_path=Path(raw["log_path"]),
            port=int(raw["port"]),
            controller_port=int(raw["controller_port"]),
        )


def _pom_property(name: str) -> str:
    """Read a <properties> value from pom.xml, so the version lives in one place."""
    ns = {"m": "http://maven.apache.org/POM/4.0.0"}
    node = ET.parse(POM_PATH).getroot().find(f"m:properties/m:{name}", ns)
    if node is None or not node.text:
        raise KafkaLocalError(f"{POM_PATH} has no <{name}> property")
    return node.text.strip()


KAFKA_VERSION = _pom_property("kafka.version")


# --------------------------------------------------------------------------- jars


def _require_tool(name: str) -> str:
    """Locate an external tool, failing with an install hint rather than a bare ENOENT."""
    found = shutil.which(name)
    if found is None:
        raise KafkaLocalError(f"`{name}` not found on PATH: {_TOOL_HINTS.get(name, '')}")
    return found


def _run_checked(cmd: list[str], what: str, timeout_s: float) -> None:
    """Run a tool to completion; on failure raise with the tail of its output."""
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired as exc:
        raise KafkaLocalError(f"{what} did not finish within {timeout_s:.0f}s") from exc
    if proc.returncode != 0:
        output = (proc.stdout + proc.stderr)[-4000:]
        raise KafkaLocalError(f"{what} failed (exit {proc.returncode}):\n{output}")


def _cache_root(cache_dir: Path | None) -> Path:
    """Explicit argument, else $JIAHE_KAFKA_CACHE, else ~/.cache/jiahe/kafka."""
    if cache_dir is not None:
        return Path(cache_dir)
    env = os.environ.get("JIAHE_KAFKA_CACHE")
    if env:
        return Path(env)
    return Path.home() / ".cache" / "jiahe" / "kafka"


def _pom_digest() -> str:
    """Hash of pom.xml: a changed POM (e.g. new log4j) invalidates the cached jars."""
    return hashlib.sha256(POM_PATH.read_bytes()).hexdigest()[:16]


def _cache_complete(libs: Path, digest: str) -> bool:
    """The stamp is written last, so its presence means the fetch finished."""
    stamp = libs / _STAMP_FILE
    return stamp.is_file() and stamp.read_text().strip() == digest


@contextlib.contextmanager
def _locked(lock_path: Path) -> Iterator[None]:
    """Exclusive advisory lock: concurrent test sessions must not fetch or start twice."""
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _run_mvn(mvn: str, out_dir: Path) -> None:
    """Copy the runtime-scope jars of pom.xml into out_dir."""
    cmd = [
        mvn, "-q", "-B", "-f", str(POM_PATH), "dependency:copy-dependencies",
        "-DincludeScope=runtime", f"-DoutputDirectory={out_dir}",
    ]
    _run_checked(cmd, "mvn dependency:copy-dependencies", timeout_s=900)
    if not (out_dir / f"kafka_2.13-{KAFKA_VERSION}.jar").is_file():
        raise KafkaLocalError(f"mvn succeeded but kafka_2.13-{KAFKA_VERSION}.jar is missing")


def _swap_in(fresh: Path, libs: Path) -> None:
    """Replace libs with fresh by renames, so readers never see a half-filled folder."""
    if libs.exists():
        stale = libs.with_name(f".libs-stale-{os.getpid()}-{time.monotonic_ns()}")
        libs.rename(stale)
        shutil.rmtree(stale, ignore_errors=True)
    fresh.rename(libs)


def ensure_jars(cache_dir: Path | None = None) -> Path:
    """Return the folder holding the broker jars, fetching them with Maven the first time.

    The cache is ``<root>/<KAFKA_VERSION>/libs`` where root is ``cache_dir``, else
    ``$JIAHE_KAFKA_CACHE``, else ``~/.cache/jiahe/kafka``. Jars are copied into a temp dir
    beside it and renamed into place only when complete, so an interrupted fetch never
    leaves a half cache; a file lock keeps parallel callers from fetching twice.
    """
    version_dir = _cache_root(cache_dir) / KAFKA_VERSION
    libs = version_dir / "libs"
    digest = _pom_digest()
    if _cache_complete(libs, digest):
        return libs
    mvn = _require_tool("mvn")
    with _locked(version_dir / ".lock"):
        if _cache_complete(libs, digest):
            return libs
        fresh = Path(tempfile.mkdtemp(prefix=".libs-fetch-", dir=version_dir))
        try:
            _run_mvn(mvn, fresh)
            (fresh / _STAMP_FILE).write_text(digest + "\n")
            _swap_in(fresh, libs)
        finally:
            shutil.rmtree(fresh, ignore_errors=True)
    return libs


# --------------------------------------------------------------------------- ports & files


def _free_port(exclude: int | None = None) -> int:
    """Ask the kernel for an unused loopback port."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((HOST, 0))
            port = int(sock.getsockname()[1])
        if port != exclude:
            return port


def _port_free(port: int) -> bool:
    """Whether the broker could bind port now (SO_REUSEADDR, as the JVM sets it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
    return True


def _port_open(port: int) -> bool:
    """Whether something accepts TCP connections on the loopback port."""
    try:
        with socket.create_connection((HOST, port), timeout=1.0):
            return True
    except OSError:
        return False


def _write_atomic(path: Path, text: str) -> None:
    """Write via rename so a reader never parses a half-written file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    tmp.replace(path)


def _read_json(path: Path) -> dict[str, object] | None:
    """Parse a JSON object file, treating a missing or corrupt file as absent."""
    try:
        raw = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return raw if isinstance(raw, dict) else None


def _tail(path: Path, lines: int = 40) -> str:
    """Last lines of a log, Java stack frames dropped so the causes fit in an error message."""
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            handle.seek(max(0, handle.tell() - 65536))
            data = handle.read().decode("utf-8", "replace")
    except OSError:
        return f"({path.name}: not written)"
    kept = [ln for ln in data.splitlines() if not ln.lstrip().startswith(("at ", "... "))]
    return "\n".join(kept[-lines:]) or f"({path.name}: empty)"


# --------------------------------------------------------------------------- processes


def _cmdline(pid: int) -> list[str]:
    """argv of a live process ([] for gone or zombie processes)."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [arg.decode("utf-8", "replace") for arg in raw.split(b"\0") if arg]


def _is_our_broker(pid: int, data_dir: Path) -> bool:
    """Whether pid is a java kafka.Kafka serving this data dir (guards against PID reuse)."""
    _reap(pid)
    args = _cmdline(pid)
    if not args or not Path(args[0]).name.startswith("java"):
        return False
    return _MAIN_CLASS in args and str(data_dir / _PROPS_FILE) in args


def _reap(pid: int) -> None:
    """Collect the exit status of a broker we spawned, so it does not linger as a zombie."""
    proc = _CHILDREN.get(pid)
    if proc is not None and proc.poll() is not None:
        del _CHILDREN[pid]


def _signal(pid: int, sig: signal.Signals) -> None:
    """Send a signal, ignoring a process that already exited."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def _wait_gone(pid: int, data_dir: Path, timeout_s: float) -> bool:
    """Poll until the broker process has exited; False on timeout."""
    deadline = time.monotonic() + timeout_s
    while _is_our_broker(pid, data_dir):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.1)
    return True


def _java_cmd(java: str, libs: Path, data_dir: Path, heap_mb: int) -> list[str]:
    """JVM prefix shared by the storage tool and the broker."""
    return [
        java, f"-Xmx{heap_mb}m", f"-Xms{heap_mb}m", "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20",
        "-XX:+ExitOnOutOfMemoryError", "-Djava.awt.headless=true",
        f"-Dlog4j2.configurationFile={LOG4J_CONFIG}", f"-Dkafka.logs.dir={data_dir}",
        "-cp", f"{libs}/*",  # a literal '*': the JVM expands the classpath wildcard itself
    ]


# --------------------------------------------------------------------------- storage


@dataclass(frozen=True)
class _Layout:
    port: int
    controller_port: int
    storage: Path


def _choose_layout(data_dir: Path, port: int | None) -> _Layout:
    """Reuse the last storage if its controller port is still free, else plan a fresh one.

    ``--standalone`` bakes the controller address into the formatted storage, so each
    storage subdir is named after its controller port; a new port means a new subdir
    (older ones are left in place, never deleted).
    """
    prev = _read_json(data_dir / _STORAGE_FILE) or {}
    prev_c, prev_p = prev.get("controller_port"), prev.get("port")
    if isinstance(prev_c, int) and prev_c != port and _port_free(prev_c):
        cport = prev_c
    else:
        cport = _free_port(exclude=port)
    if port is None:
        free_prev = isinstance(prev_p, int) and prev_p != cport and _port_free(prev_p)
        port = prev_p if free_prev and isinstance(prev_p, int) else _free_port(exclude=cport)
    return _Layout(port=port, controller_port=cport, storage=data_dir / f"kraft-c{cport}")


def _server_properties(layout: _Layout) -> str:
    """A single combined broker+controller node on loopback, tuned for fast tests."""
    listeners = f"PLAINTEXT://{HOST}:{layout.port},CONTROLLER://{HOST}:{layout.controller_port}"
    props = {
        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.quorum.bootstrap.servers": f"{HOST}:{layout.controller_port}",
        "listeners": listeners,
        "advertised.listeners": listeners,
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        "log.dirs": str(layout.storage),
        "num.partitions": "1",
        "default.replication.factor": "1",
        "min.insync.replicas": "1",
        "offsets.topic.num.partitions": "1",
        "offsets.topic.replication.factor": "1",
        "transaction.state.log.num.partitions": "1",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "share.coordinator.state.topic.num.partitions": "1",
        "share.coordinator.state.topic.replication.factor": "1",
        "share.coordinator.state.topic.min.isr": "1",
        "group.initial.rebalance.delay.ms": "0",
        "auto.create.topics.enable": "false",
    }
    return "".join(f"{key}={value}\n" for key, value in props.items())


def _cluster_id() -> str:
    """16 random bytes, base64url without padding; must not look like a CLI flag."""
    while True:
        cid = base64.urlsafe_b64encode(os.urandom(16)).rstrip(b"=").decode()
        if not cid.startswith("-"):
            return cid


def _format_storage(java: str, libs: Path, data_dir: Path) -> None:
    """Run kafka.tools.StorageTool so the broker finds a meta.properties."""
    cmd = _java_cmd(java, libs, data_dir, 256) + [
        "kafka.tools.StorageTool", "format", "-t", _cluster_id(),
        "-c", str(data_dir / _PROPS_FILE), "--standalone",
    ]
    _run_checked(cmd, "formatting Kafka storage (kafka.tools.StorageTool)", timeout_s=180)


def _prepare_storage(java: str, libs: Path, data_dir: Path, port: int | None) -> _Layout:
    """Write server.properties and make sure its log dir is formatted."""
    layout = _choose_layout(data_dir, port)
    _write_atomic(data_dir / _PROPS_FILE, _server_properties(layout))
    if not (layout.storage / "meta.properties").is_file():
        _format_storage(java, libs, data_dir)
    record = {"port": layout.port, "controller_port": layout.controller_port,
              "storage": layout.storage.name}
    _write_atomic(data_dir / _STORAGE_FILE, json.dumps(record, indent=2))
    return layout


# --------------------------------------------------------------------------- lifecycle


def is_ready(bootstrap: str, timeout_s: float = 5.0) -> bool:
    """Whether a broker at bootstrap answers a metadata request (kafka-python list_topics)."""
    from kafka.admin import KafkaAdminClient  # heavy import, only when a broker is probed

    timeout_ms = max(1000, int(timeout_s * 1000))
    try:
        admin = KafkaAdminClient(
            bootstrap_servers=bootstrap, client_id="jiahe-kafka-local-probe",
            bootstrap_timeout_ms=timeout_ms, request_timeout_ms=timeout_ms,
        )
    except Exception:
        return False
    try:
        admin.list_topics()
        return True
    except Exception:
        return False
    finally:
        admin.close()


def _launch(java: str, libs: Path, data_dir: Path, heap_mb: int) -> subprocess.Popen[bytes]:
    """Start kafka.Kafka detached (own session), console output appended to kafka.out."""
    cmd = _java_cmd(java, libs, data_dir, heap_mb) + [_MAIN_CLASS, str(data_dir / _PROPS_FILE)]
    with open(data_dir / _CONSOLE_LOG, "ab") as out:
        out.write(f"=== kafka_local start {time.strftime('%Y-%m-%d %H:%M:%S')} ===\n".encode())
        out.flush()
        proc = subprocess.Popen(
            cmd, cwd=data_dir, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    _CHILDREN[proc.pid] = proc
    return proc


def _wait_ready(proc: subprocess.Popen[bytes], info: BrokerInfo, timeout_s: float) -> None:
    """Block until the client port accepts and serves metadata (the broker is unfenced)."""
    deadline = time.monotonic() + timeout_s
    while True:
        code = proc.poll()
        if code is not None:
            raise KafkaLocalError(f"broker exited with status {code} during start")
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise KafkaLocalError(f"broker not ready after {timeout_s:.0f}s")
        if _port_open(info.port) and is_ready(info.bootstrap, min(5.0, remaining)):
            return
        time.sleep(0.2)


def _start_failed(proc: subprocess.Popen[bytes], data_dir: Path, why: str) -> KafkaLocalError:
    """Kill the half-started broker and build an error quoting both logs."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=10)
    _CHILDREN.pop(proc.pid, None)
    (data_dir / _STATE_FILE).unlink(missing_ok=True)
    return KafkaLocalError(
        f"Kafka broker in {data_dir} failed to start: {why}\n"
        f"--- {_CONSOLE_LOG} (tail) ---\n{_tail(data_dir / _CONSOLE_LOG)}\n"
        f"--- {_SERVER_LOG} (tail) ---\n{_tail(data_dir / _SERVER_LOG, 10)}"
    )


def start(
    data_dir: Path, port: int | None = None, heap_mb: int = 512, timeout_s: float = 90
) -> BrokerInfo:
    """Start a broker serving data_dir on 127.0.0.1 and wait until clients can use it.

    Idempotent per data dir: if its recorded broker is still alive, that broker is
    returned and nothing new is started. ``port`` fixes the client port (default: the
    previous one if free, else a free one). On failure the started JVM is killed and
    the raised :class:`KafkaLocalError` carries the tail of the broker logs.
    """
    data_dir = Path(data_dir).resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    with _locked(data_dir / _LOCK_FILE):
        running = status(data_dir)
        if running is not None:
            return running
        java = _require_tool("java")
        libs = ensure_jars()
        layout = _prepare_storage(java, libs, data_dir, port)
        proc = _launch(java, libs, data_dir, heap_mb)
        info = BrokerInfo(
            bootstrap=f"{HOST}:{layout.port}", pid=proc.pid, data_dir=data_dir,
            log_path=data_dir / _SERVER_LOG, port=layout.port,
            controller_port=layout.controller_port,
        )
        _write_atomic(data_dir / _STATE_FILE, info.to_json())
        try:
            _wait_ready(proc, info, timeout_s)
        except BaseException as exc:  # incl. KeyboardInterrupt: never leave an orphan JVM
            raise _start_failed(proc, data_dir, str(exc) or type(exc).__name__) from exc
        return info


def status(data_dir: Path) -> BrokerInfo | None:
    """The broker recorded in data_dir if its process is still alive, else None."""
    data_dir = Path(data_dir).resolve()
    try:
        info = BrokerInfo.from_json((data_dir / _STATE_FILE).read_text())
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return info if _is_our_broker(info.pid, data_dir) else None


def stop(data_dir: Path, timeout_s: float = 30) -> bool:
    """Stop the broker of data_dir: SIGTERM (controlled shutdown), SIGKILL after timeout_s.

    Only signals the recorded PID if it still is a java kafka.Kafka for this data dir.
    Returns False if no broker was running there. The state file is removed either way.
    """
    data_dir = Path(data_dir).resolve()
    if not (data_dir / _STATE_FILE).exists():
        return False
    with _locked(data_dir / _LOCK_FILE):
        info = status(data_dir)
        if info is None:  # stale state file: the process is gone or is not ours
            (data_dir / _STATE_FILE).unlink(missing_ok=True)
            return False
        _signal(info.pid, signal.SIGTERM)
        if not _wait_gone(info.pid, data_dir, timeout_s):
            _signal(info.pid, signal.SIGKILL)
            _wait_gone(info.pid, data_dir, 10)
        (data_dir / _STATE_FILE).unlink(missing_ok=True)
        return True
