"""Real SSH nodes for simulated instances.

Every instance is a real ``sshd`` run as the invoking user (no root needed) on its own loopback
address and port, with its own home directory, ``TMUX_TMPDIR`` (so its own tmux server), host key,
``authorized_keys`` and a fake ``nvidia-smi`` first on ``PATH``.

Processes of an instance are found again through an environment marker that sshd puts into every
session (``SetEnv GPUOPS_SIM_NODE=<token>:<id>``) and that tmux servers and jobs inherit, so
destroying an instance kills everything it started, wherever it re-parented itself to.
"""

from __future__ import annotations

import asyncio
import getpass
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from .errors import SimConfigError
from .images import Image, write_node_image

MARKER = "GPUOPS_SIM_NODE"
DATA = Path(__file__).parent / "data"


def find_sshd() -> str:
    for cand in (shutil.which("sshd"), "/usr/sbin/sshd", "/usr/local/sbin/sshd", "/opt/homebrew/sbin/sshd"):
        if cand and os.access(cand, os.X_OK):
            return cand
    raise SimConfigError("sshd not found: install openssh-server (apt-get install openssh-server)")


def find_sftp_server() -> str | None:
    for cand in ("/usr/lib/openssh/sftp-server", "/usr/libexec/openssh/sftp-server", "/usr/libexec/sftp-server",
                 "/usr/lib/ssh/sftp-server"):
        if os.access(cand, os.X_OK):
            return cand
    return None


def find_nss_wrapper() -> str | None:
    """libnss_wrapper (Debian: libnss-wrapper) lets a node's passwd entry point at the instance home, so
    ``~user``, ``getpwnam().pw_dir`` and the session's start directory match a real container."""
    import glob

    for pattern in ("/usr/lib/*/libnss_wrapper.so", "/usr/lib64/libnss_wrapper.so", "/usr/lib/libnss_wrapper.so",
                    "/usr/local/lib/libnss_wrapper.so", "/opt/homebrew/lib/libnss_wrapper.dylib"):
        hits = sorted(glob.glob(pattern))
        if hits:
            return hits[0]
    return None


def loopback_supports_aliases() -> bool:
    """Linux routes all of 127/8 to lo; elsewhere only 127.0.0.1 is safe without root."""
    return sys.platform.startswith("linux")


def free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def port_accepts(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def ssh_banner(host: str, port: int, timeout: float = 1.0) -> str | None:
    try:
        with socket.create_connection((host, port), timeout=timeout) as s:
            s.settimeout(timeout)
            data = s.recv(256)
            return data.decode("ascii", "replace").strip() if data.startswith(b"SSH-") else None
    except OSError:
        return None


def _proc_environ(pid: int) -> bytes:
    try:
        with open(f"/proc/{pid}/environ", "rb") as fh:
            return fh.read()
    except OSError:
        return b""


def pids_with_marker(value_prefix: str) -> list[int]:
    """PIDs whose environment has GPUOPS_SIM_NODE starting with ``value_prefix``.

    ``value_prefix`` is ``<token>:<id>`` for one instance or ``<token>:`` for a whole simulator.
    """
    needle = f"{MARKER}={value_prefix}".encode()
    me = os.getpid()
    out = []
    if not os.path.isdir("/proc"):
        return out
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        pid = int(name)
        if pid == me:
            continue
        env = _proc_environ(pid)
        if not env:
            continue
        for entry in env.split(b"\0"):
            if entry.startswith(needle):
                # exact instance match: value must be prefix followed by end (instance) or anything (sim)
                if value_prefix.endswith(":") or entry == needle:
                    out.append(pid)
                break
    return out


def pids_using_dirs(parent: Path | str) -> dict[str, set[int]]:
    """Processes whose working directory or any open file lies under ``parent/<name>/``, by ``<name>``.

    This finds what the environment marker cannot: sshd drops its environment, so its listener and the
    per-connection processes (kept alive by a client's ControlPersist master long after a node is gone)
    carry no marker, but they all hold the node's sshd.log (and nss_wrapper files) open.
    """
    root = os.path.realpath(str(parent)) + os.sep
    spare = _ancestors()  # never ourselves or the shell that runs us (it may sit in a node's home)
    out: dict[str, set[int]] = {}
    if not os.path.isdir("/proc"):
        return out
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) in spare:
            continue
        pid = int(name)
        links = [f"/proc/{pid}/cwd"]
        try:
            links += [f"/proc/{pid}/fd/{fd}" for fd in os.listdir(f"/proc/{pid}/fd")]
        except OSError:  # gone, or not ours
            continue
        for link in links:
            try:
                target = os.readlink(link)
            except OSError:
                continue
            if target.startswith(root):
                node = target[len(root):].split(os.sep, 1)[0]
                if node:
                    out.setdefault(node, set()).add(pid)
                    break
    return out


def _ancestors() -> set[int]:
    pids, pid = set(), os.getpid()
    while pid > 1 and pid not in pids:
        pids.add(pid)
        try:
            with open(f"/proc/{pid}/stat") as fh:
                pid = int(fh.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            break
    return pids


def descendants(root_pid: int) -> list[int]:
    """All descendants of a process (one pass over /proc)."""
    children: dict[int, list[int]] = {}
    for name in os.listdir("/proc") if os.path.isdir("/proc") else []:
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as fh:
                ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(name))
    out, todo = [], [root_pid]
    while todo:
        for c in children.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


def kill_pids(pids: list[int], deadline_s: float = 5.0) -> list[int]:
    """SIGTERM, wait (polling, bounded), then SIGKILL what is left. Returns survivors (should be [])."""
    for pid in pids:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        except PermissionError:
            pass
    end = time.monotonic() + deadline_s
    delay = 0.01
    alive = list(pids)
    while alive and time.monotonic() < end:
        alive = [p for p in alive if _alive(p)]
        if alive:
            time.sleep(delay)
            delay = min(delay * 2, 0.2)
    for pid in alive:
        try:
            os.kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    end = time.monotonic() + 2.0
    while alive and time.monotonic() < end:
        alive = [p for p in alive if _alive(p)]
        if alive:
            time.sleep(0.02)
    return alive


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # zombies count as dead
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


class NodeStartAborted(RuntimeError):
    """The node was stopped (or destroyed) while its sshd was starting."""


@dataclass
class NodeSpec:
    """What the engine asks for when it boots a node."""

    instance_id: str
    ip: str
    authorized_keys: list[str]
    gpus: list[dict]
    env: dict[str, str] = field(default_factory=dict)
    onstart: str | None = None
    listen_ports: int = 2  # direct + proxy
    # the container's image (sim/images.py): its PATH directory, and whether something of the provider's
    # (a RunPod template's start script, Vast's init) writes the keys into authorized_keys
    image: Image | None = None
    path_dir: str | None = None
    inject_keys: bool = True
    settings: dict = field(default_factory=dict)


class NodeManager:
    def __init__(self, state_dir: Path, token: str):
        self.state_dir = Path(state_dir)
        self.nodes_dir = self.state_dir / "nodes"
        self.nodes_dir.mkdir(parents=True, exist_ok=True)
        self.token = token
        self.user = getpass.getuser()
        self.sshd = find_sshd()
        self.sftp = find_sftp_server()
        self.nss_wrapper = find_nss_wrapper()
        self._procs: dict[str, subprocess.Popen] = {}
        self._blackholes: dict[str, list[socket.socket]] = {}
        self.is_root = os.geteuid() == 0
        # without root, nodes also accept the login name root (as on RunPod and Vast) through nss_wrapper
        self.root_alias = bool(self.nss_wrapper) and not self.is_root and self.user != "root"
        if self.is_root:
            # privilege separation directory, needed only when sshd runs as root
            try:
                os.makedirs("/run/sshd", mode=0o755, exist_ok=True)
            except OSError:
                pass

    # ---------------------------------------------------------------- files
    def node_dir(self, instance_id: str) -> Path:
        return self.nodes_dir / instance_id

    def home(self, instance_id: str) -> Path:
        return self.node_dir(instance_id) / "home"

    def tmux_dir(self, instance_id: str) -> Path:
        """The node's TMUX_TMPDIR. tmux's socket path (<dir>/tmux-<uid>/default) must fit in a unix socket
        address (~107 bytes), so a deep state dir gets a short private dir under the system temp dir."""
        d = self.node_dir(instance_id) / "tmux"
        if len(str(d)) + len(f"/tmux-{os.getuid()}/default") < 100:
            return d
        return Path(tempfile.gettempdir()) / f"gpuops-sim-{os.getuid()}" / f"{self.token}-{instance_id}"

    def prepare(self, spec: NodeSpec) -> Path:
        """Create the instance's directory (idempotent: a restarted node keeps its home, like a volume)."""
        d = self.node_dir(spec.instance_id)
        (d / "home").mkdir(parents=True, exist_ok=True)
        (d / "bin").mkdir(exist_ok=True)
        os.chmod(d, 0o700)
        tmux = self.tmux_dir(spec.instance_id)
        tmux.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        tmux.mkdir(mode=0o700, exist_ok=True)
        os.chmod(tmux, 0o700)
        hostkey = d / "ssh_host_ed25519_key"
        if not hostkey.exists():
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"sim-{spec.instance_id}",
                            "-f", str(hostkey)], check=True, stdin=subprocess.DEVNULL)
        self.write_authorized_keys(spec.instance_id, spec.authorized_keys if spec.inject_keys else [])
        self.write_gpus(spec.instance_id, spec.gpus)
        smi = d / "bin" / "nvidia-smi"
        if not smi.exists():
            # a program of the host's driver, not of the image: it runs without the image's Python
            code = (DATA / "nvidia_smi.py").read_text().split("\n", 1)[1]
            smi.write_text(f"#!{sys.executable} -I\n{code}")
            os.chmod(smi, 0o755)
        if spec.image is not None:
            write_node_image(d, spec.image, spec.settings, self.sshd)
        if self.nss_wrapper:
            self._write_nss_files(d)
        # the container environment as RunPod/Vast images expose it to ssh sessions
        envfile = d / "container.env"
        envfile.write_text("".join(f"export {k}={_shq(v)}\n" for k, v in sorted(spec.env.items())))
        os.chmod(envfile, 0o600)
        return d

    def _write_nss_files(self, d: Path) -> None:
        import pwd

        home = str(d / "home")
        rows = []
        for pw in pwd.getpwall():
            pw_dir = home if pw.pw_name == self.user else pw.pw_dir
            rows.append(":".join([pw.pw_name, "x", str(pw.pw_uid), str(pw.pw_gid), pw.pw_gecos, pw_dir,
                                  pw.pw_shell]))
        mine = [r for r in rows if r.startswith(self.user + ":")] or [
            f"{self.user}:x:{os.getuid()}:{os.getgid()}::{home}:/bin/sh"]  # user from LDAP etc.: add it
        alias = []
        if self.root_alias:
            # "root" is a second name for the invoking user (same uid, same home), so the vendors' own tools,
            # which always say root@, log in: an unprivileged sshd can only become its own uid, which this is.
            # nss_wrapper answers the first matching row: name root -> this alias, uid -> the user's own row
            # (first), uid 0 -> the real root row (kept, later), so files still show their real owners.
            shell = mine[0].rsplit(":", 1)[1]
            alias = [f"root:x:{os.getuid()}:{os.getgid()}:root alias:{home}:{shell}"]
        rows = mine + alias + [r for r in rows if r not in mine]
        (d / "passwd").write_text("\n".join(rows) + "\n")
        import grp

        (d / "group").write_text("".join(f"{g.gr_name}:x:{g.gr_gid}:{','.join(g.gr_mem)}\n" for g in grp.getgrall()))

    def nss_env(self, instance_id: str) -> dict[str, str]:
        if not self.nss_wrapper:
            return {}
        d = self.node_dir(instance_id)
        return {"LD_PRELOAD": self.nss_wrapper, "NSS_WRAPPER_PASSWD": str(d / "passwd"),
                "NSS_WRAPPER_GROUP": str(d / "group")}

    def write_authorized_keys(self, instance_id: str, keys: list[str]) -> None:
        p = self.node_dir(instance_id) / "authorized_keys"
        p.write_text("".join(k.strip() + "\n" for k in keys if k and k.strip()))
        os.chmod(p, 0o600)

    def add_authorized_key(self, instance_id: str, key: str) -> None:
        p = self.node_dir(instance_id) / "authorized_keys"
        existing = p.read_text().splitlines() if p.exists() else []
        if key.strip() not in existing:
            self.write_authorized_keys(instance_id, existing + [key.strip()])

    def write_gpus(self, instance_id: str, gpus: list[dict]) -> None:
        p = self.node_dir(instance_id) / "gpus.json"
        tmp = p.with_suffix(".tmp")
        tmp.write_text(json.dumps(gpus, indent=1))
        os.replace(tmp, p)

    def read_gpus(self, instance_id: str) -> list[dict]:
        try:
            return json.loads((self.node_dir(instance_id) / "gpus.json").read_text())
        except (OSError, ValueError):
            return []

    def node_path(self, spec: NodeSpec) -> str:
        """The container's PATH: the node's own bin (nvidia-smi, what was installed), then its image's programs."""
        d = self.node_dir(spec.instance_id)
        if spec.path_dir:
            return f"{d / 'bin'}:{spec.path_dir}"
        return f"{d / 'bin'}:/usr/local/bin:/usr/bin:/bin:/usr/local/sbin:/usr/sbin:/sbin"

    def container_env(self, spec: NodeSpec) -> dict[str, str]:
        """The environment of the container's own processes (its start command, Vast's onstart)."""
        d = self.node_dir(spec.instance_id)
        return {
            "HOME": str(d / "home"),
            "TMUX_TMPDIR": str(self.tmux_dir(spec.instance_id)),
            "PATH": self.node_path(spec),
            "GPUOPS_SIM_NODE_DIR": str(d),
            MARKER: f"{self.token}:{spec.instance_id}",
            **self.nss_env(spec.instance_id),
            **spec.env,
        }

    def write_config(self, spec: NodeSpec, ports: list[int]) -> Path:
        """sshd's config for the ports the container's 22/tcp is mapped to (sshd itself starts later, from the
        container's start command, or not at all)."""
        return self._sshd_config(spec, ports)

    def _sshd_config(self, spec: NodeSpec, ports: list[int]) -> Path:
        d = self.node_dir(spec.instance_id)
        home = d / "home"
        setenv = {
            "HOME": str(home),
            "TMUX_TMPDIR": str(self.tmux_dir(spec.instance_id)),
            "PATH": self.node_path(spec),
            "GPUOPS_SIM_NODE_DIR": str(d),
            "GPUOPS_SIM_GPU_FILE": str(d / "gpus.json"),
            "GPUOPS_SIM_CONTAINER_ENV": str(d / "container.env"),
            MARKER: f"{self.token}:{spec.instance_id}",
            **self.nss_env(spec.instance_id),
        }
        for k in ("RUNPOD_POD_ID", "RUNPOD_PUBLIC_IP", "RUNPOD_TCP_PORT_22", "VAST_CONTAINERLABEL",
                  "VAST_TCP_PORT_22", "CONTAINER_ID", "PUBLIC_IPADDR", "RUNPOD_API_KEY", "CONTAINER_API_KEY",
                  # simulator only: the API's address and the virtual clock (absent on the clouds)
                  "RUNPOD_API_URL", "VAST_API_URL", "GPUOPS_CLOCK_OFFSET_FILE"):
            if k in spec.env:
                setenv[k] = spec.env[k]
        lines = [f"ListenAddress {spec.ip}:{p}" for p in ports]
        lines += [
            f"HostKey {d / 'ssh_host_ed25519_key'}",
            f"PidFile {d / 'sshd.pid'}",
            # the provider's injected keys, and ~/.ssh/authorized_keys as a start command writes it
            f"AuthorizedKeysFile {d / 'authorized_keys'} {home / '.ssh' / 'authorized_keys'}",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "PubkeyAuthentication yes",
            "UsePAM no",
            # the instance dir lives in a state dir the user owns; sshd's checks assume ~/.ssh
            "StrictModes no",
            "PermitRootLogin prohibit-password",
            f"AllowUsers {self.user}" + (" root" if self.root_alias else ""),
            "PrintMotd no",
            "PrintLastLog no",
            "UseDNS no",
            "MaxStartups 100:30:200",
            "MaxSessions 50",
            "ClientAliveInterval 30",
            "AllowTcpForwarding yes",
            "LogLevel ERROR",
            "SetEnv " + " ".join(f'{k}="{v}"' for k, v in setenv.items()),
        ]
        if not self.nss_wrapper:
            # fallback without nss_wrapper: start sessions in the instance home and map ~user to it
            lines.append(f"ForceCommand {d / 'bin' / 'session'}")
        if self.sftp:
            lines.append(f"Subsystem sftp {self.sftp}")
        else:
            lines.append("Subsystem sftp internal-sftp")
        session = d / "bin" / "session"
        session.write_text(
            "#!/bin/sh\n"
            "# sim node login: start in the instance home, honour the requested command (also sftp-server)\n"
            'cd "$HOME" 2>/dev/null || true\n'
            'if [ -n "$SSH_ORIGINAL_COMMAND" ]; then\n'
            '  exec "${SHELL:-/bin/sh}" -c "$(printf %s "$SSH_ORIGINAL_COMMAND" | sed "s#~$(id -un)#~#g")"\n'
            'fi\n'
            'exec "${SHELL:-/bin/sh}" -l\n'
        )
        os.chmod(session, 0o755)
        cfg = d / "sshd_config"
        cfg.write_text("\n".join(lines) + "\n")
        return cfg

    # ---------------------------------------------------------------- lifecycle
    async def start(self, spec: NodeSpec, *, deadline_s: float = 15.0, ports: list[int] | None = None) -> list[int]:
        """Boot sshd (on ``ports`` when given: an address already reported); return its ports once it answers
        with an SSH banner."""
        last_err = ""
        wanted = list(ports) if ports else None
        for _attempt in range(5):
            ports, wanted = wanted or [free_port(spec.ip) for _ in range(spec.listen_ports)], None
            if len(set(ports)) != len(ports):
                continue
            cfg = self._sshd_config(spec, ports)
            log = self.node_dir(spec.instance_id) / "sshd.log"
            env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), MARKER: f"{self.token}:{spec.instance_id}",
                   "LANG": "C.UTF-8", **self.nss_env(spec.instance_id)}
            proc = subprocess.Popen([self.sshd, "-D", "-e", "-f", str(cfg)], stdin=subprocess.DEVNULL,
                                    stdout=open(log, "ab"), stderr=subprocess.STDOUT, env=env,
                                    start_new_session=True, close_fds=True)
            self._procs[spec.instance_id] = proc
            ok = await self._wait_banner(spec.ip, ports[0], proc, deadline_s)
            if self._procs.get(spec.instance_id) is not proc:  # stopped or destroyed meanwhile: no retry
                raise NodeStartAborted(f"node {spec.instance_id} was stopped while its sshd started")
            if ok:
                if spec.onstart:
                    self._run_onstart(spec)
                return ports
            last_err = _tail(log)
            await self._stop_proc(spec.instance_id)
        raise RuntimeError(f"sshd for {spec.instance_id} did not start: {last_err}")

    async def _wait_banner(self, host: str, port: int, proc: subprocess.Popen, deadline_s: float) -> bool:
        end = time.monotonic() + deadline_s
        delay = 0.005
        while time.monotonic() < end:
            if proc.poll() is not None:
                return False
            if await asyncio.to_thread(port_accepts, host, port, 0.2):
                return True
            await asyncio.sleep(delay)
            delay = min(delay * 1.5, 0.1)
        return False

    def _run_onstart(self, spec: NodeSpec) -> None:
        d = self.node_dir(spec.instance_id)
        subprocess.Popen(["/bin/sh", "-c", spec.onstart], cwd=str(d / "home"), env=self.container_env(spec),
                         stdin=subprocess.DEVNULL, stdout=open(d / "onstart.log", "ab"), stderr=subprocess.STDOUT,
                         start_new_session=True)

    def run_main(self, spec: NodeSpec, argv: list[str]) -> str | None:
        """Start the container's main process (its start command). Returns the container runtime's error when
        the program is not on the image's PATH (the container fails), else None."""
        d = self.node_dir(spec.instance_id)
        env = self.container_env(spec)
        if not argv:
            return None
        prog = argv[0] if "/" in argv[0] else shutil.which(argv[0], path=env["PATH"])
        if not prog or not os.access(prog, os.X_OK):
            return (f"OCI runtime create failed: runc create failed: unable to start container process: exec: "
                    f"\"{argv[0]}\": executable file not found in $PATH: unknown")
        subprocess.Popen([prog] + argv[1:], cwd=str(d / "home"), env=env, stdin=subprocess.DEVNULL,
                         stdout=open(d / "container.log", "ab"), stderr=subprocess.STDOUT, start_new_session=True)
        return None

    def open_blackhole(self, instance_id: str, ip: str, count: int = 2) -> list[int]:
        """Ports that accept TCP but never speak SSH: 'SSH that never opens' behind a live port mapping."""
        socks, ports = [], []
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((ip, 0))
            s.listen(64)
            socks.append(s)
            ports.append(s.getsockname()[1])
        self._blackholes[instance_id] = socks
        return ports

    async def _stop_proc(self, instance_id: str) -> None:
        proc = self._procs.pop(instance_id, None)
        if proc and proc.poll() is None:
            proc.terminate()
            try:
                await asyncio.to_thread(proc.wait, 3)
            except subprocess.TimeoutExpired:
                proc.kill()
                await asyncio.to_thread(proc.wait, 3)

    async def stop(self, instance_id: str) -> list[int]:
        """Kill sshd (listener and every open connection), the tmux server and every process of the node.
        Returns survivors (should be [])."""
        for s in self._blackholes.pop(instance_id, []):
            s.close()
        proc = self._procs.get(instance_id)
        # connections outlive their listener (sshd's design): a client's ControlPersist master would keep a
        # shell on a destroyed node, so the listener's whole tree goes too
        tree = await asyncio.to_thread(descendants, proc.pid) if proc and proc.poll() is None else []
        await self._stop_proc(instance_id)
        await asyncio.to_thread(self._kill_tmux, instance_id)
        pids = set(tree) | set(await asyncio.to_thread(self.processes, instance_id))
        return await asyncio.to_thread(kill_pids, sorted(pids))

    def _kill_tmux(self, instance_id: str) -> None:
        tmuxdir = self.tmux_dir(instance_id)
        if tmuxdir.is_dir():
            for sock_dir in tmuxdir.glob("tmux-*"):
                for sock in sock_dir.iterdir():
                    subprocess.run(["tmux", "-S", str(sock), "kill-server"], stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL, timeout=5, check=False)

    async def destroy(self, instance_id: str) -> list[int]:
        survivors = await self.stop(instance_id)
        shutil.rmtree(self.tmux_dir(instance_id), ignore_errors=True)
        shutil.rmtree(self.node_dir(instance_id), ignore_errors=True)
        return survivors

    def processes(self, instance_id: str) -> list[int]:
        """Every process of the node: marked ones (sessions, tmux, jobs) and sshd's (no marker, see
        pids_using_dirs)."""
        pids = set(pids_with_marker(f"{self.token}:{instance_id}"))
        pids |= pids_using_dirs(self.nodes_dir).get(str(instance_id), set())
        return sorted(pids)

    def processes_all(self) -> dict[str, list[int]]:
        """processes() of every node, in one pass over /proc (for status listings)."""
        out: dict[str, set[int]] = {k: set(v) for k, v in pids_using_dirs(self.nodes_dir).items()}
        prefix = f"{MARKER}={self.token}:".encode()
        me = os.getpid()
        for name in os.listdir("/proc") if os.path.isdir("/proc") else []:
            if not name.isdigit() or int(name) == me:
                continue
            for entry in _proc_environ(int(name)).split(b"\0"):
                if entry.startswith(prefix):
                    out.setdefault(entry[len(prefix):].decode(errors="replace"), set()).add(int(name))
                    break
        return {k: sorted(v) for k, v in out.items()}

    def sshd_alive(self, instance_id: str) -> bool:
        p = self._procs.get(instance_id)
        return bool(p and p.poll() is None)


def _shq(v: str) -> str:
    return "'" + str(v).replace("'", "'\"'\"'") + "'"


def _tail(path: Path, n: int = 3) -> str:
    try:
        lines = path.read_text(errors="replace").strip().splitlines()
        return " | ".join(lines[-n:])
    except OSError:
        return ""
