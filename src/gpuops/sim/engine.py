"""The simulator's engine: one store of instances shared by the RunPod and Vast front ends.

Phases (provider-neutral): provisioning -> starting -> running -> exited | error -> terminated.
Timed transitions (boot, preemption) run on a virtual clock (wall time + an offset that tests can
advance), so billing and preemption can be tested exactly without waiting.
"""

from __future__ import annotations

import asyncio
import fnmatch
import heapq
import itertools
import json
import logging
import os
import secrets
import shlex
import string
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .catalog import Catalog, RunpodGpuType, VastMachine
from .errors import ApiError
from .faults import Fault, FaultSet
from .images import Image, ImageCatalog, build_path_dir, cuda_key, valid_reference
from .nodes import NodeManager, NodeSpec, free_port, loopback_supports_aliases

log = logging.getLogger("gpuops.sim")

BILLED_GPU = {"runpod": {"provisioning", "starting", "running"}, "vast": {"running"}}
LIVE = {"provisioning", "starting", "running"}
# what Vast shows for a container that cannot be created (dstack and SkyPilot treat it as fatal)
BOOT_ERROR_MSG = ("Error response from daemon: failed to create task for container: failed to create shim task: "
                  "OCI runtime create failed: runc create failed: unable to start container process: exec: "
                  "\"/bin/sh\": permission denied: unknown")


class Clock:
    def __init__(self) -> None:
        self.offset = 0.0

    def now(self) -> float:
        return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds


@dataclass
class Instance:
    id: str
    provider: str  # runpod | vast
    name: str  # RunPod name / Vast label
    hardware: str
    gpu_type: str  # RunPod gpu type id / Vast gpu_name
    gpu_count: int
    price_per_hour: float  # what the instance is billed at while its GPU is billed
    image: str
    created_at: float
    phase: str = "provisioning"
    interruptible: bool = False
    bid: float | None = None  # RunPod: per GPU; Vast: per machine
    disk_gb: float = 20
    ports: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    cloud: str = "SECURE"
    data_center: str | None = None
    cuda_version: str | None = None
    machine_id: str | int | None = None
    offer_id: int | None = None
    onstart: str | None = None
    runtype: str = "ssh"
    direct_ssh: bool = True
    support_public_ip: bool = True  # RunPod GraphQL supportPublicIp: false -> 22/tcp mapped, but not public
    keys: list[str] = field(default_factory=list)
    ip: str = "127.0.0.1"
    ssh_port: int | None = None  # direct (public) port of 22/tcp
    proxy_port: int | None = None
    started_at: float | None = None
    ended_at: float | None = None
    terminated_at: float | None = None
    status_msg: str | None = None
    intended: str = "running"
    stop_reason: str | None = None  # user | preempted | error
    api_only: bool = False
    locked: bool = False
    args: str = ""
    template_id: str | None = None
    mounts: dict = field(default_factory=dict)
    volume_gb: int = 0
    volume_mount_path: str = "/workspace"
    host_id: str = field(default_factory=lambda: secrets.token_hex(4))
    storage_cost: float = 0.0  # Vast $/GB/month
    # billing
    gpu_seconds: float = 0.0
    storage_seconds: float = 0.0
    _billing_mark: float = 0.0
    _usage: dict = field(default_factory=dict)  # hour start (epoch s) -> [gpu seconds, storage seconds]
    # fault state
    boot_seconds: float = 1.0
    boot_never: bool = False
    pull_never: bool = False
    boot_error: bool = False
    ssh_never: bool = False
    preempt_after: float | None = None
    terminate_failures: int = 0
    gpu_fault: dict = field(default_factory=dict)
    label_extra: dict = field(default_factory=dict)
    sshd_at: float | None = None  # when sshd began answering (after the mapping, with sshd_start_seconds)
    pulling: bool = False  # the image is being pulled (RunPod: RUNNING meanwhile, runtime null; Vast: loading)
    pull_seconds: float | None = None  # how long the last pull took (cold, or from the host's cache)
    run_gen: int = 0  # bumped by every start and stop: timers of an earlier run are void
    # the instance's own API key (Vast CONTAINER_API_KEY, RunPod's pod-scoped RUNPOD_API_KEY): see instance_keys
    api_key: str = field(default_factory=lambda: secrets.token_hex(32))

    @property
    def live(self) -> bool:
        return self.phase in LIVE

    def public(self) -> dict:
        d = asdict(self)
        for k in list(d):
            if k.startswith("_"):
                del d[k]
        d.pop("keys", None)
        d.pop("env", None)
        d.pop("api_key", None)
        return d


class Engine:
    def __init__(self, catalog: Catalog, state_dir: Path, *, nodes: NodeManager | None = None,
                 token: str | None = None):
        self.catalog = catalog
        self.state_dir = Path(state_dir)
        self.token = token or secrets.token_hex(6)
        self.clock = Clock()
        self.faults = FaultSet()
        self.nodes = nodes or NodeManager(self.state_dir, self.token)
        self.instances: dict[str, Instance] = {}
        self.tombstones: list[Instance] = []
        self.runpod_stock = {gid: dict(t.stock) for gid, t in catalog.runpod_gpu_types.items()}
        self.runpod_account_keys: list[str] = []
        self.vast_account_keys: list[dict] = []
        self.vast_asks: dict[int, VastMachine] = {}  # ask id -> machine
        self.vast_rented: dict[int, int] = {}  # machine id -> instance id
        self.vast_spent_asks: set[int] = set()  # ask ids already rented (410 on reuse)
        self._ask_ids = itertools.count(4_200_000)
        # Vast ids never come back; the vastai CLI caches `ssh-url` answers per id for a day, so a restarted
        # simulator must not hand out the ids of the last run (8 digits, as on Vast, rising with the clock)
        self._vast_ids = itertools.count(10_000_000 + int(time.time()) % 9_000_000 * 10)
        self._vast_key_ids = itertools.count(30_001)
        for m in catalog.vast_machines.values():
            self.vast_asks[next(self._ask_ids)] = m
        self._timers: list[tuple[float, int, str, str]] = []
        self._seq = itertools.count()
        self._wake = asyncio.Event()
        self._tasks: set[asyncio.Task] = set()
        self._ticker: asyncio.Task | None = None
        self._ip_seq = itertools.count(2)
        self._fake_ports = itertools.count(40_000)
        self._dirty = True
        self._closing = False
        self.stats: dict[str, int] = {}
        self.balance_limit = float(catalog.settings.get("runpod_balance", 500.0))
        self.images = ImageCatalog.load(catalog.images)
        self.pulled: dict[str, set[str]] = {}  # host -> images in its local cache
        # what a node needs to reach "its provider" (the server sets these once it listens): the same override
        # variables the modules honour, so the real path (public URLs, no variable) is untouched
        self.api_urls: dict[str, str] = {}
        # the virtual clock's offset, for nodes (their processes read wall time): GPUOPS_CLOCK_OFFSET_FILE
        self.clock_file = self.state_dir / "clock_offset"
        self._write_clock_file()

    # ------------------------------------------------------------------ lifecycle of the engine
    async def begin(self) -> None:
        """Start the timer loop and the state writer (call once the event loop runs)."""
        self._ticker = asyncio.create_task(self._tick_loop())
        self._spawn(self._snapshot_loop())

    async def shutdown(self) -> dict:
        """Destroy every instance (kills every node process)."""
        self._closing = True
        ids = [i.id for i in self.instances.values()]
        survivors: list[int] = []
        for iid in ids:
            inst = self.instances.get(iid)
            if inst:
                survivors += await self._destroy_node(inst)
                self._finish_terminate(inst)
        for t in list(self._tasks):
            t.cancel()
        if self._ticker:
            self._ticker.cancel()
        self.snapshot()
        return {"destroyed": len(ids), "survivors": survivors}

    def _spawn(self, coro) -> asyncio.Task:
        t = asyncio.create_task(coro)
        self._tasks.add(t)
        t.add_done_callback(self._task_done)
        return t

    def _task_done(self, t: asyncio.Task) -> None:
        self._tasks.discard(t)
        if not t.cancelled() and t.exception():
            log.error("background task failed: %r", t.exception())

    # ------------------------------------------------------------------ timers
    def _schedule(self, at: float, iid: str, action: str) -> None:
        inst = self.instances.get(iid)
        gen = inst.run_gen if inst else 0
        heapq.heappush(self._timers, (at, next(self._seq), iid, f"{action}:{gen}"))
        self._wake.set()

    async def _tick_loop(self) -> None:
        while True:
            now = self.clock.now()
            while self._timers and self._timers[0][0] <= now:
                _, _, iid, action = heapq.heappop(self._timers)
                inst = self.instances.get(iid)
                if inst is None:
                    continue
                try:
                    await self._on_timer(inst, action)
                except Exception:  # keep the loop alive; the instance goes to error
                    log.exception("timer %s for %s failed", action, iid)
                    inst.phase = "error"
                    inst.status_msg = "internal simulator error"
            timeout = 0.5
            if self._timers:
                timeout = max(0.0, min(timeout, self._timers[0][0] - self.clock.now()))
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=timeout)
            except asyncio.TimeoutError:
                pass

    def advance_clock(self, seconds: float) -> None:
        self._bill_all()
        self.clock.advance(seconds)
        self._write_clock_file()
        self._bill_all()
        self._wake.set()

    def _write_clock_file(self) -> None:
        tmp = self.clock_file.with_suffix(".tmp")
        try:
            tmp.write_text(f"{self.clock.offset!r}\n")
            os.replace(tmp, self.clock_file)
        except OSError:
            log.warning("could not write %s: nodes will not see the virtual clock", self.clock_file)

    async def _on_timer(self, inst: Instance, action: str) -> None:
        action, _, gen = action.partition(":")
        if gen and int(gen) != inst.run_gen:  # scheduled for an earlier run (stopped and started since)
            return
        if action == "boot" and inst.phase == "provisioning":
            self._set_phase(inst, "starting")
            if inst.boot_error:
                self._enter_error(inst, BOOT_ERROR_MSG if inst.provider == "vast" else
                                  "container create failed: exec format error")
                return
            if inst.boot_never:
                inst.status_msg = "pulling image"
                return
            self._spawn(self._boot_node(inst))
        elif action == "preempt" and inst.phase == "running" and inst.interruptible:
            await self._stop_node(inst, reason="preempted")

    # ------------------------------------------------------------------ billing
    def _bill(self, inst: Instance) -> None:
        now = self.clock.now()
        dt = max(0.0, now - inst._billing_mark)
        inst._billing_mark = now
        if inst.phase == "terminated":
            return
        if inst.phase in BILLED_GPU[inst.provider]:
            inst.gpu_seconds += dt
            self._record_usage(inst, now - dt, now, 0)
        if inst.provider == "vast":
            inst.storage_seconds += dt
            self._record_usage(inst, now - dt, now, 1)

    @staticmethod
    def _record_usage(inst: Instance, start: float, end: float, kind: int) -> None:
        """Spread [start, end) over hour buckets (what the vendors' billing reports add up per bucket)."""
        while end - start > 1e-9:
            hour = int(start // 3600) * 3600
            upto = min(end, hour + 3600)
            inst._usage.setdefault(hour, [0.0, 0.0])[kind] += upto - start
            start = upto

    def usage_amounts(self, inst: Instance, start: float, end: float) -> dict[int, tuple[float, float]]:
        """{hour start: (GPU USD, storage USD)} billed in the hours that begin in [start, end)."""
        self._bill(inst)
        out = {}
        for hour, (gpu_s, st_s) in inst._usage.items():
            if start <= hour < end:
                out[hour] = (gpu_s / 3600.0 * inst.price_per_hour,
                             st_s / (30 * 86400.0) * inst.disk_gb * inst.storage_cost)
        return out

    def all_instances(self) -> list[Instance]:
        """Live instances and the destroyed ones (the ledger and the bills keep them)."""
        return list(self.instances.values()) + self.tombstones

    def _bill_all(self) -> None:
        for inst in self.instances.values():
            self._bill(inst)

    def _set_phase(self, inst: Instance, phase: str) -> None:
        self._bill(inst)
        inst.phase = phase
        self._dirty = True

    @staticmethod
    def cost_of(inst: Instance) -> dict:
        gpu_cost = inst.gpu_seconds / 3600.0 * inst.price_per_hour
        storage_cost = inst.storage_seconds / (30 * 86400.0) * inst.disk_gb * inst.storage_cost
        return {"gpu_cost": round(gpu_cost, 6), "storage_cost": round(storage_cost, 6),
                "cost": round(gpu_cost + storage_cost, 6)}

    def ledger(self) -> dict:
        self._bill_all()
        rows = []
        for inst in list(self.instances.values()) + self.tombstones:
            c = self.cost_of(inst)
            rows.append({
                "id": inst.id, "provider": inst.provider, "name": inst.name, "gpu_type": inst.gpu_type,
                "gpu_count": inst.gpu_count, "interruptible": inst.interruptible,
                "price_per_hour": inst.price_per_hour, "state": inst.phase,
                "billed_seconds": round(inst.gpu_seconds, 3), "storage_seconds": round(inst.storage_seconds, 3),
                **c, "created_at": inst.created_at, "terminated_at": inst.terminated_at,
                "api_only": inst.api_only,
            })
        total = round(sum(r["cost"] for r in rows), 6)
        live = [r["id"] for r in rows if r["state"] != "terminated"]
        return {"instances": rows, "total_cost": total, "live_instances": live, "clock_offset": self.clock.offset}

    def spent(self) -> float:
        return self.ledger()["total_cost"]

    # ------------------------------------------------------------------ faults at create time
    def _apply_instance_faults(self, inst: Instance, offer: Any) -> None:
        ctx = dict(provider=inst.provider, name=inst.name, gpu=inst.gpu_type, offer=offer, instance=inst.id)
        f = self.faults.take("slow_boot", **ctx)
        if f:
            inst.boot_seconds = f.seconds
        if self.faults.take("boot_never", **ctx):
            inst.boot_never = True
        if self.faults.take("pull_never", **ctx):
            inst.pull_never = True
        if self.faults.take("boot_error", **ctx):
            inst.boot_error = True
        if self.faults.take("ssh_never", **ctx):
            inst.ssh_never = True
        f = self.faults.take("preempt", **ctx)
        if f:
            inst.preempt_after = f.after_seconds
        f = self.faults.take("gpu", **ctx)
        if f:
            inst.gpu_fault = dict(f.gpu)

    def apply_gpu_faults_to_running(self, faults: list[Fault]) -> None:
        for f in faults:
            if f.type != "gpu":
                continue
            for inst in self.instances.values():
                ctx = dict(provider=inst.provider, name=inst.name, gpu=inst.gpu_type, offer=inst.offer_id,
                           instance=inst.id)
                if inst.live and not inst.api_only and f.matches(**ctx) and f.consume():
                    inst.gpu_fault = dict(f.gpu)
                    self.nodes.write_gpus(inst.id, self.gpu_state(inst))
            self.faults._prune()

    def check_create_faults(self, provider: str, name: str, gpu: str, offer: Any) -> Fault | None:
        ctx = dict(provider=provider, name=name, gpu=gpu, offer=offer)
        for ftype in ("insufficient_balance", "no_capacity"):
            f = self.faults.take(ftype, **ctx)
            if f:
                return f
        return None

    # ------------------------------------------------------------------ GPUs as nvidia-smi shows them
    def gpu_state(self, inst: Instance) -> dict:
        hw = self.catalog.hardware[inst.hardware]
        fault = inst.gpu_fault or {}
        which = set(fault.get("gpus") or range(inst.gpu_count))
        gpus = []
        for i in range(inst.gpu_count):
            g = {
                "index": i, "name": hw.smi_name, "uuid": "GPU-" + str(uuid.uuid5(uuid.NAMESPACE_URL, f"{inst.id}/{i}")),
                "pci_bus_id": f"00000000:{0x18 + i * 0x10:02X}:00.0", "memory_total_mib": hw.memory_mib,
                "memory_used_mib": 1, "temperature": 34 + i, "utilization": 0, "ecc_supported": hw.ecc,
                "ecc_uncorrected": 0, "ecc_corrected": 0, "power_draw": round(hw.power_limit * 0.07, 2),
                "power_limit": hw.power_limit, "compute_cap": hw.compute_cap,
            }
            if i in which:
                for k in ("temperature", "ecc_uncorrected", "ecc_corrected", "memory_used_mib", "utilization"):
                    if k in fault:
                        g[k] = fault[k]
                if ("ecc_uncorrected" in fault or "ecc_corrected" in fault) and not hw.ecc:
                    g["ecc_supported"] = True
            gpus.append(g)
        return {"driver_loaded": not fault.get("driver_missing", False), "driver_version": "550.127.05",
                "cuda_version": inst.cuda_version or "12.4", "gpus": gpus}

    # ------------------------------------------------------------------ create / boot
    def _next_ip(self) -> str:
        if not loopback_supports_aliases():
            return "127.0.0.1"
        n = next(self._ip_seq)
        return f"127.0.{(n // 250) % 250}.{n % 250 + 2}" if n >= 250 else f"127.0.0.{n}"

    def new_runpod_id(self) -> str:
        alphabet = string.ascii_lowercase + string.digits
        while True:
            pid = "".join(secrets.choice(alphabet) for _ in range(14))
            if pid not in self.instances:
                return pid

    def new_vast_id(self) -> str:
        return str(next(self._vast_ids))

    def add_instance(self, inst: Instance, offer: Any = None) -> Instance:
        if not inst.api_only:
            self._apply_instance_faults(inst, offer)
        inst._billing_mark = self.clock.now()
        inst.ip = self._next_ip() if not inst.api_only else f"10.{len(self.instances) // 250 % 250}.{len(self.instances) % 250}.9"
        self.instances[inst.id] = inst
        self._dirty = True
        if inst.api_only:
            inst.phase = "running"
            inst.started_at = inst.created_at
            inst.ssh_port = next(self._fake_ports)
            inst.proxy_port = next(self._fake_ports)
        else:
            self._schedule(self.clock.now() + max(0.0, inst.boot_seconds) * 0.3, inst.id, "boot")
        return inst

    async def _boot_node(self, inst: Instance) -> None:
        gen = inst.run_gen

        def stale() -> bool:  # stopped, terminated, or stopped and started again since this boot began
            # "running" only while sshd starts behind an address already mapped (sshd_start_seconds)
            return inst.phase not in ("starting", "running") or inst.run_gen != gen or self._closing

        image = self.images.resolve(inst.image)
        problem = self._image_problem(inst, image)
        if problem:
            self._enter_error(inst, problem)
            return
        # the rest of the boot time is "container starting" (STARTING on RunPod), then the image is pulled
        rest = max(0.0, inst.boot_seconds) * 0.7
        if rest:
            end = time.monotonic() + rest
            while time.monotonic() < end and not stale():
                await asyncio.sleep(min(0.05, end - time.monotonic()))
        if stale() or not await self._pull(inst, image, stale):
            return
        try:
            main = self._main_command(inst, image)
        except ValueError as e:  # unbalanced quotes: the runtime cannot split the start command
            self._enter_error(inst, f"invalid start command {inst.args!r}: {e}")
            return
        spec = NodeSpec(instance_id=inst.id, ip=inst.ip, authorized_keys=inst.keys, gpus=[],
                        env=self._node_env(inst), onstart=inst.onstart, image=image,
                        path_dir=str(build_path_dir(self.state_dir / "images", image)),
                        inject_keys=main is None, settings=self.catalog.settings)
        self.nodes.prepare(spec)
        self.nodes.write_gpus(inst.id, self.gpu_state(inst))
        if main is not None and not inst.ssh_never:  # ssh_never: a port that never speaks SSH, whoever starts
            await self._start_container(inst, spec, main)
            return
        early = await self._map_before_sshd(inst, spec, gen)
        if early is False:
            return
        if inst.ssh_never:
            ports = self.nodes.open_blackhole(inst.id, inst.ip)
        else:
            try:
                ports = await self.nodes.start(spec, ports=early)
            except Exception as e:
                await self.nodes.stop(inst.id)  # whatever half-started, it goes
                if stale():  # stopped or terminated while sshd started
                    return
                # sshd failed: a container error, as a vendor would report it
                log.error("node %s failed to boot: %s", inst.id, e)
                self._enter_error(inst, f"container failed to start: {e}")
                return
        if stale():  # stopped/terminated while booting
            await self.nodes.stop(inst.id)
            return
        inst.sshd_at = self.clock.now()
        if early:
            return
        self._container_up(inst, ports)

    def _container_up(self, inst: Instance, ports: list[int]) -> None:
        inst.pulling = False
        inst.ssh_port, inst.proxy_port = ports[0], ports[1]
        inst.started_at = self.clock.now()
        inst.status_msg = f"success, running {inst.image}/ssh" if inst.provider == "vast" else None
        self._set_phase(inst, "running")
        if inst.interruptible and inst.preempt_after is not None:
            self._schedule(self.clock.now() + inst.preempt_after, inst.id, "preempt")

    # ------------------------------------------------------------------ images
    def _image_problem(self, inst: Instance, image: Image) -> str | None:
        """Why a container of this image cannot start on the instance's host, as the vendor reports it."""
        if not valid_reference(inst.image):
            return f"Error response from daemon: invalid reference format: {inst.image!r}"
        if not image.exists:
            return (f"Error response from daemon: manifest for {inst.image} not found: manifest unknown: "
                    "manifest unknown")
        host_cuda = inst.cuda_version or "12.4"
        if image.cuda and cuda_key(image.cuda) > cuda_key(host_cuda):
            return ("OCI runtime create failed: runc create failed: unable to start container process: error "
                    "during container init: error running hook #0: error running hook: exit status 1, stdout: , "
                    f"stderr: nvidia-container-cli: requirement error: unsatisfied condition: cuda>={image.cuda}, "
                    "please update your driver to a newer version, or use an earlier cuda container: unknown")
        return None

    def _host_key(self, inst: Instance) -> str:
        """Whose image cache a pull fills: Vast's machine; RunPod's data center (pods rarely share a host,
        and RunPod does not say which host a pod got)."""
        return f"vast:{inst.machine_id}" if inst.provider == "vast" else f"runpod:{inst.data_center}"

    async def _pull(self, inst: Instance, image: Image, stale) -> bool:
        """Pull the image (cold at image_pull_mb_per_s, from the host's cache at image_extract_mb_per_s).
        RunPod reports the pod RUNNING meanwhile (runtime null, no ports); Vast shows ``loading`` and the
        progress in status_msg."""
        host = self._host_key(inst)
        cached = image.ref in self.pulled.get(host, set())
        rate = float(self.catalog.settings.get("image_extract_mb_per_s" if cached else "image_pull_mb_per_s",
                                               20000 if cached else 5000))
        seconds = image.size_gb * 1024 / max(rate, 1e-6)
        if inst.pull_never:  # stalls at 37 %, the progress never moves again
            seconds = float("inf")
        inst.pulling = True
        if inst.provider == "runpod":
            self._set_phase(inst, "running")
        start = time.monotonic()
        # "pulling" lasts until the container is up (_container_up): RunPod has no runtime before that
        try:
            while not stale():
                done = time.monotonic() - start
                if done >= seconds:
                    break
                if inst.provider == "vast":
                    part = 0.37 if inst.pull_never else done / seconds
                    inst.status_msg = (f"{'Extracting' if cached else 'Pulling'} {inst.image}: "
                                       f"{image.size_gb * part:.2f} GB / {image.size_gb:.2f} GB ({int(100 * part)}%)")
                await asyncio.sleep(min(0.1, seconds - done))
        finally:
            if stale():
                inst.pulling = False
        if stale():
            return False
        inst.pull_seconds = round(time.monotonic() - start, 3)
        self.pulled.setdefault(host, set()).add(image.ref)
        return True

    @staticmethod
    def _main_command(inst: Instance, image: Image) -> list[str] | None:
        """What the container runs: None for the provider's own sshd (Vast's init for ssh/jupyter runtypes, a
        RunPod template's start script), else the argv of its start command ([]: the image's CMD, no SSH)."""
        args = shlex.split(inst.args) if inst.args else []
        if inst.provider == "vast" and inst.runtype != "args":
            return None  # Vast replaces the entrypoint with its init (sshd, keys), then runs onstart
        if args:
            return args
        return None if image.entrypoint == "sshd" else []

    async def _start_container(self, inst: Instance, spec: NodeSpec, argv: list[str]) -> None:
        """The container is up with its ports mapped; only what its start command does brings sshd."""
        ports = [free_port(inst.ip) for _ in range(spec.listen_ports)]
        self.nodes.write_config(spec, ports)
        error = self.nodes.run_main(spec, argv)
        if error:
            await self.nodes.stop(inst.id)
            self._enter_error(inst, error)
            return
        self._container_up(inst, ports)

    async def _map_before_sshd(self, inst: Instance, spec: NodeSpec, gen: int) -> list[int] | None | bool:
        """With settings.sshd_start_seconds, as on real clouds: the container runs and its ports are mapped
        (the API reports the address) before sshd inside answers. Returns the mapped ports, None when
        sshd starts with the mapping, False when the instance was stopped meanwhile."""
        delay = float(self.catalog.settings.get("sshd_start_seconds", 0) or 0)
        if delay <= 0 or inst.ssh_never:
            return None
        ports = [free_port(inst.ip) for _ in range(spec.listen_ports)]
        inst.pulling = False
        inst.ssh_port, inst.proxy_port = ports[0], ports[1]
        inst.started_at = self.clock.now()
        inst.status_msg = f"success, running {inst.image}/ssh" if inst.provider == "vast" else None
        self._set_phase(inst, "running")
        end = time.monotonic() + delay
        while time.monotonic() < end:
            if inst.phase != "running" or inst.run_gen != gen or self._closing:
                return False
            await asyncio.sleep(min(0.05, end - time.monotonic()))
        return ports

    def _enter_error(self, inst: Instance, msg: str) -> None:
        """The container could not start: ERROR (RunPod), not billed for GPU; the GPUs go back to stock."""
        inst.pulling = False
        self._set_phase(inst, "error")
        inst.status_msg = msg
        inst.ssh_port = inst.proxy_port = None
        if inst.provider == "runpod":
            self._release_runpod_stock(inst)

    def _node_env(self, inst: Instance) -> dict[str, str]:
        env = dict(inst.env)
        if inst.provider == "runpod":
            env.update(RUNPOD_POD_ID=inst.id, RUNPOD_PUBLIC_IP=inst.ip, RUNPOD_GPU_COUNT=str(inst.gpu_count),
                       RUNPOD_POD_HOSTNAME=f"{inst.id}-{inst.host_id}", RUNPOD_API_KEY=inst.api_key)
        else:
            env.update(VAST_CONTAINERLABEL=f"C.{inst.id}", CONTAINER_ID=str(inst.id), PUBLIC_IPADDR=inst.ip,
                       CONTAINER_API_KEY=inst.api_key)
        env.update(self.node_sim_env(inst.provider))
        return env

    def node_sim_env(self, provider: str) -> dict[str, str]:
        """Only the simulator sets these on a node: where the provider's API is, and the virtual clock."""
        env = {"GPUOPS_CLOCK_OFFSET_FILE": str(self.clock_file)}
        name = {"runpod": "RUNPOD_API_URL", "vast": "VAST_API_URL"}[provider]
        if provider in self.api_urls:
            env[name] = self.api_urls[provider]
        return env

    def instance_by_key(self, key: str) -> Instance | None:
        """The live instance whose own API key this is (a terminated instance's key is unknown)."""
        for inst in self.instances.values():
            if secrets.compare_digest(inst.api_key, key):
                return inst
        return None

    # ------------------------------------------------------------------ stop / start / terminate
    async def _stop_node(self, inst: Instance, reason: str) -> None:
        inst.run_gen += 1
        inst.pulling = False
        self._set_phase(inst, "exited")
        inst.stop_reason = reason
        inst.ended_at = self.clock.now()
        inst.ssh_port = inst.proxy_port = None
        if inst.provider == "runpod":
            self._release_runpod_stock(inst)
        if reason == "preempted":
            inst.status_msg = "preempted: interruptible instance outbid"
        if not inst.api_only:
            await self.nodes.stop(inst.id)

    async def stop(self, inst: Instance) -> None:
        if inst.phase in ("exited", "error"):
            inst.intended = "stopped"
            return
        inst.intended = "stopped"
        await self._stop_node(inst, reason="user")

    async def start(self, inst: Instance) -> None:
        if inst.live:
            inst.intended = "running"
            return
        if inst.provider == "runpod":
            self._take_runpod_stock(inst, start=True)
        inst.intended = "running"
        inst.stop_reason = None
        inst.status_msg = None
        inst.run_gen += 1
        self._set_phase(inst, "provisioning")
        if inst.api_only:
            self._set_phase(inst, "running")
            inst.ssh_port = next(self._fake_ports)
            inst.proxy_port = next(self._fake_ports)
        else:
            self._schedule(self.clock.now() + inst.boot_seconds * 0.3, inst.id, "boot")

    async def restart(self, inst: Instance) -> None:
        if inst.live:
            await self._stop_node(inst, reason="user")
        await self.start(inst)

    async def terminate(self, inst: Instance) -> None:
        f = self.faults.take("terminate_fails", provider=inst.provider, name=inst.name, gpu=inst.gpu_type,
                             offer=inst.offer_id, instance=inst.id)
        if f:
            raise ApiError(500, "Something went wrong. Please try again later or contact support.",
                           code="INTERNAL_SERVER_ERROR", title="Internal Server Error")
        if inst.live and inst.provider == "runpod":
            self._release_runpod_stock(inst)
        await self._destroy_node(inst)
        self._finish_terminate(inst)

    async def _destroy_node(self, inst: Instance) -> list[int]:
        if inst.api_only:
            return []
        survivors = await self.nodes.destroy(inst.id)
        if survivors:
            log.error("instance %s: processes survived destroy: %s", inst.id, survivors)
        return survivors

    def _finish_terminate(self, inst: Instance) -> None:
        self._set_phase(inst, "terminated")
        inst.terminated_at = self.clock.now()
        inst.ssh_port = inst.proxy_port = None
        self.instances.pop(inst.id, None)
        self.tombstones.append(inst)
        if inst.provider == "vast" and inst.machine_id is not None:
            m = self.catalog.vast_machines.get(int(inst.machine_id))
            if self.vast_rented.get(int(inst.machine_id)) == int(inst.id):
                del self.vast_rented[int(inst.machine_id)]
                if m is not None:
                    self.vast_asks[next(self._ask_ids)] = m
        self._dirty = True

    # ------------------------------------------------------------------ RunPod stock
    def _take_runpod_stock(self, inst: Instance, start: bool = False) -> None:
        if inst.api_only:
            return
        cloud = inst.cloud.lower()
        stock = self.runpod_stock.get(inst.gpu_type, {})
        if stock.get(cloud, 0) < inst.gpu_count:
            if start:
                raise ApiError(400, "There are not enough free GPUs on the host machine to start this pod.",
                               code="no_capacity")
            raise ApiError(400, "There are no longer any instances available with the requested specifications. "
                                "Please refresh and try again.", code="no_capacity")
        stock[cloud] -= inst.gpu_count

    def _release_runpod_stock(self, inst: Instance) -> None:
        if inst.api_only:
            return
        stock = self.runpod_stock.setdefault(inst.gpu_type, {})
        stock[inst.cloud.lower()] = stock.get(inst.cloud.lower(), 0) + inst.gpu_count

    def runpod_gpu_type(self, gid: str) -> RunpodGpuType | None:
        return self.catalog.runpod_gpu_types.get(gid)

    # ------------------------------------------------------------------ queries
    def get(self, iid: str, provider: str) -> Instance | None:
        inst = self.instances.get(str(iid))
        if inst and inst.provider == provider:
            self._bill(inst)
            return inst
        return None

    def list(self, provider: str) -> list[Instance]:
        return [i for i in self.instances.values() if i.provider == provider]

    def find_by_name(self, provider: str, pattern: str) -> list[Instance]:
        return [i for i in self.list(provider) if fnmatch.fnmatch(i.name, pattern)]

    # ------------------------------------------------------------------ persistence
    def snapshot(self) -> None:
        data = {
            "token": self.token,
            "instances": [{"id": i.id, "provider": i.provider, "name": i.name, "status": i.phase, "ip": i.ip,
                           "ssh_port": i.ssh_port, "api_only": i.api_only} for i in self.instances.values()],
            "written_at": time.time(),
        }
        p = self.state_dir / "state.json"
        tmp = p.with_suffix(".tmp")
        try:
            tmp.write_text(json.dumps(data))
            os.replace(tmp, p)
        except OSError:
            pass
        self._dirty = False

    async def _snapshot_loop(self) -> None:
        while True:
            if self._dirty:
                self.snapshot()
            await asyncio.sleep(0.5)  # poll interval of the debounced state writer

    def status(self) -> list[dict]:
        out = []
        procs = self.nodes.processes_all() if any(not i.api_only for i in self.instances.values()) else {}
        for i in self.instances.values():
            self._bill(i)
            out.append({"id": i.id, "provider": i.provider, "name": i.name, "status": i.phase,
                        "gpu_type": i.gpu_type, "gpu_count": i.gpu_count, "interruptible": i.interruptible,
                        "ssh_host": i.ip if i.ssh_port else None, "ssh_port": i.ssh_port,
                        "price_per_hour": i.price_per_hour, "api_only": i.api_only,
                        "processes": 0 if i.api_only else len(procs.get(i.id, []))})
        return out
