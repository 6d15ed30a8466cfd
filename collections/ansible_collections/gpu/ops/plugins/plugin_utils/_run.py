# -*- coding: utf-8 -*-
# Copyright: gpu.ops contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0), or at your option
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The run spec and the run record, on the controller. PRIVATE to the collection, may change.

A run is described by one YAML file of flat variables (the run spec, documented in
``plugins/modules/run_spec.py``) and leaves ``<runs_dir>/<run_id>/`` behind: ``run.json`` (status, inputs
without secret values, instances, step timings), ``cost.json``, ``provenance.json``, ``metrics.jsonl``,
``loss.png`` and one directory per host. Several processes write the record (the playbook, the guardian
that tears a dead run down), so every write is a locked read-modify-write followed by an atomic rename.
"""

from __future__ import annotations

import datetime
import getpass
import json
import os
import re
import secrets
import subprocess
import time

from ansible_collections.gpu.ops.plugins.module_utils import lifecycle, registry
from ansible_collections.gpu.ops.plugins.module_utils.lifecycle import read_json
from ansible_collections.gpu.ops.plugins.module_utils.provider import parse_ttl, utc_iso

# every key of the run spec with its type and default; the module doc (plugins/modules/run_spec.py) says what
# each one means
SPEC = {
    "run_id": {"type": "str"},
    "name": {"type": "str"},
    "repo": {"type": "path"},
    "target": {"type": "str", "default": "cloud", "choices": ["cloud", "homelab", "ssh"]},
    "homelab_group": {"type": "str", "default": "gpu_nodes"},
    "ssh_hosts": {"type": "list", "elements": "str", "default": []},
    "nodes": {"type": "int", "default": 1},
    "gpu": {"type": "list", "elements": "str", "default": []},
    "gpu_count": {"type": "int", "default": 1},
    "providers": {"type": "list", "elements": "str", "default": []},
    "max_price_per_hour": {"type": "float"},
    "interruptible": {"type": "bool", "default": False},
    "image": {"type": "str", "default": "pytorch/pytorch:2.4.0-cuda12.4-cudnn9-runtime"},
    "images": {"type": "dict", "default": {}},
    # the lowest CUDA the image needs (derived from well-known image tags when not given): hosts whose driver
    # supports less are never rented
    "cuda": {"type": "str"},
    "pull_timeout": {"type": "int", "default": 1800},
    "disk_gb": {"type": "int", "default": 20},
    "bootstrap": {"type": "str", "default": ""},
    "bootstrap_timeout": {"type": "int", "default": 600},
    "dependency_files": {"type": "list", "elements": "str", "default": []},
    "command": {"type": "str"},
    "workdir": {"type": "str", "default": ""},
    "job_name": {"type": "str", "default": "train"},
    "job_timeout": {"type": "int", "default": 86400},
    "env": {"type": "dict", "default": {}},
    "secret_env": {"type": "list", "elements": "str", "default": []},
    "outputs": {"type": "list", "elements": "str", "default": []},
    "artifacts": {"type": "list", "elements": "dict", "default": []},
    "dirty": {"type": "str", "default": "warn", "choices": ["warn", "ship", "fail", "ignore"]},
    "keep_on_failure": {"type": "bool", "default": False},
    "ttl": {"type": "str", "default": "24h"},
    "max_cost": {"type": "float"},
    "idle_timeout": {"type": "int", "default": 1800},
    "health_replacements": {"type": "int", "default": 1},
    "health_min_score": {"type": "int", "default": 80},
    "wait_timeout": {"type": "int", "default": 600},
    "max_attempts": {"type": "int", "default": 10},
    "ssh_private_key_file": {"type": "path", "default": "~/.ssh/id_ed25519"},
    "ssh_public_key_file": {"type": "path"},
    "runs_dir": {"type": "path", "default": "runs"},
    "owner": {"type": "str"},
    "progress_interval": {"type": "int", "default": 30},
    "detach": {"type": "bool", "default": False},
    # managed runs (plugin_utils/_managed.py): preemption recovery and restarts from the last checkpoint
    "on_preemption": {"type": "str", "choices": ["resume", "fail"]},
    "max_recoveries": {"type": "int", "default": 2},
    "max_restarts_on_errors": {"type": "int", "default": 0},
    "checkpoint_sync_interval": {"type": "int", "default": 30},
    "preemption_detect_s": {"type": "int", "default": 30},
}
# what a run's spec.json keeps that is not an input: a step run later works on the same run
DERIVED = ("started_at", "expires_at", "run_dir", "job_id", "node_workdir")
# every key of a normalized spec (a run's spec.json, passed back with -e @spec.json by the guardian and the CLI)
NORMALIZED_KEYS = frozenset(DERIVED) | {"managed", "job_results", "owner", "ssh_nodes", "node_workspace"}
# health rounds are imported plays (plays cannot loop), so replacements have a ceiling
MAX_HEALTH_REPLACEMENTS = 3
# train rounds are imported plays too: restarts (preemption recoveries and restarts after errors together)
MAX_RESTARTS = 3
FINAL_STATUSES = tuple(sorted(lifecycle.FINAL_OUTCOMES))
# variables the playbooks take besides the spec's keys (a step's switches), and prefixes that are never spec keys
CONTROL_VARS = frozenset(("teardown_status", "teardown_message", "collect", "logs_follow", "logs_lines",
                          "logs_bootstrap", "logs_interval", "exec_command", "force", "run_command"))
FOREIGN_PREFIXES = ("ansible_", "awx_", "tower_", "molecule_", "x_")
ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
RUN_ID_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,40}$")


class SpecError(Exception):
    """The run spec cannot run; ``problems`` lists every reason, each one line."""

    def __init__(self, problems):
        super().__init__("; ".join(problems))
        self.problems = problems


STEP_ORDER = ("provision", "prepare", "deploy", "artifacts", "bootstrap", "health", "train", "collect", "teardown")


def iso_ms(ts):
    """ISO 8601 UTC with milliseconds: cost is price x seconds, and runs can be short."""
    return datetime.datetime.fromtimestamp(ts, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def now_utc():
    return datetime.datetime.now(datetime.timezone.utc)


def new_run_id(name, when=None):
    """``{name}-{YYYYmmdd-HHMMSS}-{4 hex}``; the name is reduced to what every provider accepts in a name."""
    slug = re.sub(r"[^a-z0-9]+", "-", str(name or "run").lower()).strip("-")[:20].strip("-") or "run"
    stamp = (when or now_utc()).strftime("%Y%m%d-%H%M%S")
    return "%s-%s-%s" % (slug, stamp, secrets.token_hex(2))


def git(repo, *args):
    return subprocess.run(["git", "-C", repo] + list(args), capture_output=True, text=True, timeout=60,
                          check=False)


def check_repo(repo, dirty):
    """(problems, facts) for the repository the run deploys."""
    if not os.path.isdir(repo):
        return ["repo %s does not exist" % repo], {}
    top = git(repo, "rev-parse", "--show-toplevel")
    if top.returncode != 0:
        return ["repo %s is not a git repository (git init, commit your code, then run again)" % repo], {}
    head = git(repo, "rev-parse", "--verify", "HEAD")
    if head.returncode != 0:
        return ["repo %s has no commit yet: commit your code first" % repo], {}
    changes = [ln for ln in git(repo, "status", "--porcelain").stdout.splitlines() if ln.strip()]
    if changes and dirty == "fail":
        return ["repo %s has %d uncommitted change(s) (%s) and dirty is 'fail': commit them, or set dirty: ship "
                "to deploy them, or warn to deploy HEAD only" % (repo, len(changes), ", ".join(
                    c[3:] for c in changes[:5]))], {}
    return [], {"commit": head.stdout.strip(), "dirty_files": len(changes)}


def check_key(path):
    from ansible_collections.gpu.ops.plugins.module_utils import ssh as sshu
    from ansible_collections.gpu.ops.plugins.module_utils.provider import ConfigError

    try:
        sshu.check_private_key(path)
    except ConfigError as exc:
        return [exc.message if hasattr(exc, "message") else str(exc)]
    return []


def _check_numbers(s):
    problems = []
    for key, low in (("nodes", 1), ("gpu_count", 1), ("disk_gb", 1), ("bootstrap_timeout", 1), ("job_timeout", 1),
                     ("idle_timeout", 60), ("wait_timeout", 1), ("pull_timeout", 1), ("progress_interval", 1),
                     ("max_attempts", 1)):
        if s[key] < low:
            problems.append("%s must be at least %d (got %s)" % (key, low, s[key]))
    if not 0 <= s["health_replacements"] <= MAX_HEALTH_REPLACEMENTS:
        problems.append("health_replacements must be between 0 and %d (got %s)" % (
            MAX_HEALTH_REPLACEMENTS, s["health_replacements"]))
    for key in ("max_recoveries", "max_restarts_on_errors"):
        if not 0 <= s[key] <= MAX_RESTARTS:
            problems.append("%s must be between 0 and %d (got %s)" % (key, MAX_RESTARTS, s[key]))
    for key in ("checkpoint_sync_interval", "preemption_detect_s"):
        if s[key] < 1:
            problems.append("%s must be at least 1 (got %s)" % (key, s[key]))
    if not 0 <= s["health_min_score"] <= 100:
        problems.append("health_min_score must be between 0 and 100")
    for key in ("max_price_per_hour", "max_cost"):
        if s[key] is not None and s[key] <= 0:
            problems.append("%s must be greater than 0 (got %s)" % (key, s[key]))
    try:
        parse_ttl(s["ttl"])
    except ValueError as exc:
        problems.append(str(exc))
    return problems + _check_cuda(s)


CUDA_RE = re.compile(r"^[0-9]{1,2}\.[0-9]{1,2}$")
CUDA_TAG_RE = re.compile(r"cuda[-_]?v?([0-9]+)\.([0-9]+)", re.I)


def image_cuda(image):
    """The CUDA an image is built for, from its tag: ``...-cuda12.4-...``, ``cuda-12.4.1``, ``nvidia/cuda:12.4.1-...``."""
    m = CUDA_TAG_RE.search(image or "")
    if m:
        return "%d.%d" % (int(m.group(1)), int(m.group(2)))
    name, _sep, tag = (image or "").partition(":")
    m = re.match(r"([0-9]+)\.([0-9]+)", tag)
    if name.rsplit("/", 1)[-1] == "cuda" and m:
        return "%d.%d" % (int(m.group(1)), int(m.group(2)))
    return None


def _check_cuda(s):
    """``cuda`` given (a version such as 12.4), or the highest one the run's images name in their tags."""
    if s["cuda"] is not None and str(s["cuda"]).strip():
        s["cuda"] = str(s["cuda"]).strip()
        if not CUDA_RE.match(s["cuda"]):
            return ["cuda must be a version such as 12.4 (got %r)" % s["cuda"]]
        return []
    found = [image_cuda(i) for i in [s["image"]] + list((s["images"] or {}).values())]
    found = [v for v in found if v]
    s["cuda"] = max(found, key=lambda v: tuple(int(x) for x in v.split("."))) if found else None
    return []


def _check_env(s, environ):
    problems = []
    for key in list(s["env"]) + list(s["secret_env"]):
        if not ENV_NAME_RE.match(str(key)):
            problems.append("environment variable name %r is not valid (letters, digits, _)" % key)
    both = sorted(set(s["env"]) & set(s["secret_env"]))
    if both:
        problems.append("%s is in both env and secret_env" % ", ".join(both))
    unset = [n for n in s["secret_env"] if ENV_NAME_RE.match(str(n)) and n not in environ]
    if unset:
        problems.append("secret_env names %s, which %s not set in the controller's environment (export %s first)" % (
            ", ".join(unset), "is" if len(unset) == 1 else "are", unset[0]))
    return problems


def _check_workdir(s):
    """workdir: a directory of the repository (relative) where the bootstrap and the job run."""
    wd = (s["workdir"] or "").strip().strip("/")
    s["workdir"] = wd
    if not wd:
        return []
    if os.path.isabs(s["workdir"]) or ".." in wd.split("/"):
        return ["workdir %r must be a relative path inside the repository" % wd]
    top = git(s["repo"], "rev-parse", "--show-toplevel").stdout.strip() or s["repo"]
    if not os.path.isdir(os.path.join(top, wd)):
        return ["workdir %r is not a directory of the repository %s" % (wd, top)]
    return []


def provider_key_env():
    """{provider: the environment variable of its API key} for every provider in the registry."""
    return {cls.name: cls.key_option().env for cls in registry.classes() if cls.key_option() is not None}


def _check_cloud(s, environ):
    problems = []
    key_env = provider_key_env()
    if not s["gpu"]:
        problems.append("gpu is required for target cloud (for example gpu: [RTX 4090])")
    unknown = [p for p in s["providers"] if p not in key_env]
    if unknown:
        problems.append("unknown provider(s) %s; known: %s" % (", ".join(unknown), ", ".join(key_env)))
    wanted = [p for p in s["providers"] if p in key_env] or list(key_env)
    keyed = [p for p in wanted if environ.get(key_env[p])]
    if not keyed:
        problems.append("no API key for %s: set %s in the environment (for the local simulator: "
                        "eval \"$(gpuops-sim start)\")" % (" or ".join(wanted), " or ".join(
                            key_env[p] for p in wanted)))
    elif s["providers"] and len(keyed) < len(wanted):
        missing = [p for p in wanted if p not in keyed]
        problems.append("providers lists %s but %s is not set" % (
            ", ".join(missing), ", ".join(key_env[p] for p in missing)))
    s["providers"] = keyed
    problems += check_key(s["ssh_private_key_file"])
    return problems


def saved_spec(raw, cwd):
    """The spec.json of an existing run named by ``run_id`` (None for a new run)."""
    if not raw.get("run_id"):
        return None
    runs_dir = os.path.abspath(os.path.join(cwd, os.path.expanduser(raw.get("runs_dir") or SPEC["runs_dir"]["default"])))
    return read_json(os.path.join(runs_dir, str(raw["run_id"]), "spec.json"))


SSH_HOST_RE = re.compile(r"^(?:(?P<user>[A-Za-z_][A-Za-z0-9._-]*)@)?(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+)"
                         r"(?::(?P<port>[0-9]{1,5}))?$")


def parse_ssh_host(text):
    """``user@host[:port]`` (``[v6]:port`` for IPv6) -> {user, host, port}; raises ValueError with the reason."""
    m = SSH_HOST_RE.match(str(text or "").strip())
    if not m or (m.group("port") and not 0 < int(m.group("port")) < 65536):
        raise ValueError("ssh_hosts entry %r is not user@host[:port]" % (text,))
    return {"user": m.group("user"), "host": m.group("host").strip("[]"), "port": int(m.group("port") or 22)}


def _check_ssh_hosts(s):
    if s["target"] != "ssh":
        return []
    problems = []
    if not s["ssh_hosts"]:
        problems.append("target ssh needs ssh_hosts (user@host[:port], one per node), e.g. gpuops up --ssh me@box")
    for entry in s["ssh_hosts"]:
        try:
            parse_ssh_host(entry)
        except ValueError as exc:
            problems.append(str(exc))
    s["nodes"] = len(s["ssh_hosts"]) or s["nodes"]
    return problems + check_key(s["ssh_private_key_file"])


def ssh_nodes(spec):
    """The run's nodes of target ssh, named ``<run_id>-<i>`` in the order given (rank order), with the run's own
    known_hosts file (trust on first use, as for rented nodes)."""
    known = os.path.join(spec["run_dir"], "known_hosts")
    args = "-o UserKnownHostsFile=%s -o StrictHostKeyChecking=accept-new -o IdentitiesOnly=yes" % known
    out = []
    for i, entry in enumerate(spec["ssh_hosts"]):
        h = parse_ssh_host(entry)
        out.append({"name": "%s-%d" % (spec["run_id"], i), "kind": "ssh", "ssh_host": h["host"], "ssh_port": h["port"],
                    "ssh_user": h["user"], "ssh_private_key_file": spec["ssh_private_key_file"],
                    "ssh_common_args": args, "given": entry})
    return out


def probe_ssh_nodes(spec, timeout=10):
    """One problem per ssh host that cannot be used: no SSH server there, or the key is refused. Nothing is
    rented for these hosts, but a run must not start on a host it cannot reach."""
    from ansible_collections.gpu.ops.plugins.module_utils import ssh as sshu

    fresh_dir = not os.path.isdir(spec["run_dir"])
    os.makedirs(spec["run_dir"], mode=0o700, exist_ok=True)
    known = os.path.join(spec["run_dir"], "known_hosts")

    def run(cmd):
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout + 10, check=False,
                              stdin=subprocess.DEVNULL)
        return proc.returncode, proc.stdout, proc.stderr

    problems = []
    for node in spec.get("ssh_nodes") or []:
        where = "ssh host %s (%s:%s)" % (node["given"], node["ssh_host"], node["ssh_port"])
        ok, why = sshu.probe_banner(node["ssh_host"], node["ssh_port"], min(timeout, 5))
        if ok:
            ok, why = sshu.probe_ssh(node["ssh_host"], node["ssh_port"], node["ssh_user"],
                                     node["ssh_private_key_file"], known, timeout, run)
            why = why if ok else "%s: the login with %s was refused or failed (%s)" % (
                where, node["ssh_private_key_file"], why)
        else:
            why = "%s: no SSH server answers (%s)" % (where, why)
        if not ok:
            problems.append(why)
    if problems and fresh_dir:  # a run that cannot start leaves nothing behind
        import shutil

        shutil.rmtree(spec["run_dir"], ignore_errors=True)
    return problems


def workspace_root(spec):
    """The node's workspace: a rented node has one run, so ``~/.bifrost/workspace``; a home-lab or ssh host may
    serve several runs, each in its own ``~/.bifrost/workspaces/<run_id>``."""
    if spec["target"] == "cloud":
        return "~/.bifrost/workspace"
    return "~/.bifrost/workspaces/%s" % spec["run_id"]


def workspace_of(node_workdir, workdir):
    """The workspace a recorded ``node_workdir`` (workspace + workdir) lies in (specs saved before node_workspace)."""
    tail = "/" + workdir.strip("/") if workdir else ""
    return node_workdir[:-len(tail)] if tail and node_workdir.endswith(tail) else node_workdir


def normalize(raw, cwd, environ, when=None, record=None, command=None):
    """The run spec with defaults, absolute paths, a run id and its expiry; raises :class:`SpecError`.

    A ``run_id`` whose record exists continues that run: its saved spec fills what is not given, and its start,
    expiry and job id stay (a step playbook, the guardian's teardown, ``gpuops down``). ``command`` launch or up on
    an existing run is a new launch of it: a fresh start and expiry, and the next unused job id."""
    saved = saved_spec(raw, cwd)
    relaunch = bool(saved) and command in ("launch", "up")
    if saved:
        raw = dict({k: v for k, v in saved.items() if k in SPEC}, **{k: v for k, v in raw.items() if v is not None})
    s = {}
    for key, opt in SPEC.items():
        value = raw.get(key)
        s[key] = opt.get("default") if value is None or value == "" else value
    s["repo"] = os.path.abspath(os.path.expanduser(s["repo"] or cwd))
    s["runs_dir"] = os.path.abspath(os.path.join(cwd, os.path.expanduser(s["runs_dir"])))
    s["ssh_private_key_file"] = os.path.abspath(os.path.expanduser(s["ssh_private_key_file"]))
    s["owner"] = s["owner"] or environ.get("GPUOPS_OWNER") or _whoami()
    s["name"] = s["name"] or os.path.basename(s["repo"]) or "run"
    s["on_preemption"] = s["on_preemption"] or ("resume" if s["interruptible"] else "fail")
    # a managed run is watched in slices (checkpoint sync, preemption detection) instead of one long wait
    s["managed"] = bool((s["interruptible"] or s["max_restarts_on_errors"] > 0) and not s["detach"])
    problems = []
    if not (s["command"] or "").strip():
        problems.append("command is empty: say what the job runs (for example command: python train.py)")
    if s["run_id"] and not RUN_ID_RE.match(s["run_id"]):
        problems.append("run_id %r may contain only lower-case letters, digits and -, at most 41 characters"
                        % s["run_id"])
    s["run_id"] = s["run_id"] or new_run_id(s["name"], when)
    problems += _check_numbers(s) + _check_ssh_hosts(s)
    if saved and not relaunch:  # the run exists: its code was deployed already; secrets only matter to a job
        s["repo_facts"] = {}
        problems += [p for p in _check_cloud(s, environ) if s["target"] == "cloud"]
    else:
        problems += _check_env(s, environ)
        repo_problems, s["repo_facts"] = check_repo(s["repo"], s["dirty"])
        problems += repo_problems + _check_workdir(s)
        if s["target"] == "cloud":
            problems += _check_cloud(s, environ)
    if problems:
        raise SpecError(problems)
    if saved and not relaunch:
        s.update({k: saved[k] for k in DERIVED if saved.get(k)})
        s["existing"] = True
        s["node_workspace"] = workspace_of(s["node_workdir"], s["workdir"])
        _set_job_id(s, record, command)
        return s
    started = when or now_utc()
    s["started_at"] = started.strftime("%Y-%m-%dT%H:%M:%SZ")
    s["expires_at"] = utc_iso(started.timestamp() + parse_ttl(s["ttl"]))
    s["run_dir"] = os.path.join(s["runs_dir"], s["run_id"])
    s["node_workspace"] = workspace_root(s)
    s["node_workdir"] = s["node_workspace"] + ("/" + s["workdir"] if s["workdir"] else "")
    if s["target"] == "ssh":
        s["ssh_nodes"] = ssh_nodes(s)
    if relaunch:
        s["existing"] = True
    _set_job_id(s, record, "launch")
    return s


def _set_job_id(s, record, command):
    """The job this playbook works on: a new one (next unused id) for a launch, train or deploy; else the run's
    current job. Bootstrap and job share the id, so ``gpuops logs`` and collect find both."""
    current = lifecycle.current_job(record)
    if command in ("launch", "up", "train", "deploy", "exec") or not (current or s.get("job_id")):
        s["job_id"] = lifecycle.next_job_id(record, s["job_name"], s["run_id"])
    elif current:
        s["job_id"] = current["job_id"]
    jobs = [j.get("job_id") for j in (record or {}).get("jobs") or [] if isinstance(j, dict)]
    first = not jobs or jobs[0] == s["job_id"]
    s["job_results"] = lifecycle.job_results_dir(s["run_dir"], s["job_id"], first)


def _whoami():
    try:
        return re.sub(r"[^A-Za-z0-9._-]", "-", getpass.getuser()) or "unknown"
    except (KeyError, OSError):
        return "uid-%d" % os.getuid()


def public_spec(spec):
    """The spec as recorded: secret_env keeps its names only (values never leave the environment)."""
    return {k: v for k, v in spec.items() if k not in ("repo_facts", "existing")}


# ---------------------------------------------------------------------------- the record
# its files are written by module_utils/lifecycle.py (locked read-modify-write, atomic rename, 0600); these
# names stay for the callers that read and merge


def step_times(marks):
    """{step: seconds} from per-node marks ``{"start": t0, "deploy": t1, "bootstrap": t2, ...}`` (in order):
    each step lasts from the previous mark to its own; across nodes the slowest counts (they run together)."""
    out = {}
    for m in marks:
        prev = None
        for step, t in m.items():
            t = float(t)
            if prev is not None:
                out[step] = round(max(out.get(step, 0.0), t - prev), 2)
            prev = t
    return out


def instance_entry(inst, now=None):
    """What run.json keeps of an instance the provider modules returned."""
    conn = inst.get("connection") or {}
    return {
        "provider": inst.get("provider"), "id": str(inst.get("id")), "name": inst.get("name"),
        "gpu_model": inst.get("gpu_model"), "gpu_count": inst.get("gpu_count"),
        "price_per_hour": inst.get("price_per_hour"), "interruptible": inst.get("interruptible"),
        "offer_id": inst.get("offer_id"),
        "ssh_host": inst.get("ssh_host"), "ssh_port": inst.get("ssh_port"), "ssh_user": inst.get("ssh_user"),
        "ssh_private_key_file": conn.get("ansible_ssh_private_key_file"),
        "ssh_common_args": conn.get("ansible_ssh_common_args"),
        "created_at": inst.get("created_at") or iso_ms(now or time.time()),
        "recorded_at": iso_ms(now or time.time()),
    }


# ---------------------------------------------------------------------------- cost
def _epoch(value):
    from ansible_collections.gpu.ops.plugins.module_utils.provider import parse_iso

    if isinstance(value, (int, float)):
        return float(value)
    return parse_iso(value)


def estimate_cost(instances, now=None):
    """price per hour x billed seconds per instance: from creation to destruction (or now, still running)."""
    now = now or time.time()
    rows = []
    for inst in instances:
        start = _epoch(inst.get("created_at"))
        end = _epoch(inst.get("destroyed_at")) or now
        seconds = max(0.0, end - start) if start else 0.0
        price = float(inst.get("price_per_hour") or 0)
        rows.append({"provider": inst.get("provider"), "id": inst.get("id"), "name": inst.get("name"),
                     "price_per_hour": price, "billed_seconds": round(seconds, 1),
                     "estimated_usd": round(price * seconds / 3600.0, 6),
                     "running": not inst.get("destroyed_at")})
    return rows


def cost_document(instances, billed=None, now=None):
    """cost.json: per instance the estimate and, when the provider has billed it, the billed amount."""
    billed = billed or {}
    rows = estimate_cost(instances, now)
    for row in rows:
        b = billed.get((row["provider"], str(row["id"])))
        row["billed_usd"] = b.get("billed_usd") if b else None
        row["billed_available"] = bool(b and b.get("billed_usd") is not None)
        if not row["billed_available"]:
            row["billed_note"] = (b or {}).get("reason") or "the provider's bill is not available yet"
    est = round(sum(r["estimated_usd"] for r in rows), 6)
    total = {"estimated_usd": est, "price_per_hour": round(sum(r["price_per_hour"] for r in rows if r["running"]), 4)}
    if rows and all(r["billed_available"] for r in rows):
        total["billed_usd"] = round(sum(r["billed_usd"] for r in rows), 6)
    return {"currency": "USD", "instances": rows, "total": total}


def budget_seconds_left(instances, max_cost, now=None):
    """Seconds until the running instances spend ``max_cost`` at their prices (None without a budget)."""
    if not max_cost:
        return None
    rows = estimate_cost(instances, now)
    spent = sum(r["estimated_usd"] for r in rows)
    rate = sum(r["price_per_hour"] for r in rows if r["running"]) / 3600.0
    if rate <= 0:
        return None
    return max(0, int((max_cost - spent) / rate))


# ---------------------------------------------------------------------------- metrics and the plot
def merge_metrics(run_dir, hosts, results_dir=None):
    """metrics.jsonl of every host's outputs (of the job whose files are in ``results_dir``, default the run dir),
    one line per record with its host, in step order per host."""
    out = []
    results_dir = results_dir or run_dir
    for host in hosts:
        # a restarted job (managed runs: restart-NN/ after the first segment, files in that order) logs again the
        # steps after its checkpoint: the last record of a step wins, so the series stays one line
        by_step = {}
        for path in _metric_files(os.path.join(results_dir, host)):
            with open(path) as fh:
                for line in fh:
                    line = line.strip()
                    if not line:
                        continue
                    try:
                        rec = json.loads(line)
                    except ValueError:
                        continue  # a line cut by a killed job
                    if isinstance(rec, dict):
                        rec.setdefault("host", host)
                        by_step[rec["step"] if isinstance(rec.get("step"), int) else ("line", len(by_step))] = rec
        out.extend(by_step.values())
    with open(os.path.join(run_dir, "metrics.jsonl"), "w") as fh:
        for rec in out:
            fh.write(json.dumps(rec, sort_keys=True) + "\n")
    return out


def _metric_files(host_dir):
    found = []
    for root, _dirs, files in os.walk(host_dir):
        if "metrics.jsonl" in files:
            found.append(os.path.join(root, "metrics.jsonl"))
    return sorted(found)


def plot_loss(run_dir, metrics):
    """loss.png from the merged metrics (one line per host); (path, None) or (None, why not)."""
    series = {}
    for rec in metrics:
        if isinstance(rec.get("step"), (int, float)) and isinstance(rec.get("loss"), (int, float)):
            series.setdefault(rec.get("host", "?"), []).append((rec["step"], rec["loss"]))
    if not series:
        return None, "no metrics with step and loss"
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None, "matplotlib is not installed on the controller (pip install matplotlib)"
    fig, ax = plt.subplots(figsize=(7, 4))
    for host, points in sorted(series.items()):
        points.sort()
        ax.plot([p[0] for p in points], [p[1] for p in points], label=host)
    # managed runs: where the job restarted (from that checkpoint step) after a preemption or a failure
    for r in (read_json(os.path.join(run_dir, "run.json"), {}) or {}).get("recoveries") or []:
        ax.axvline(int(r.get("checkpoint_step") or 0), color="grey", linestyle="--", linewidth=0.8)
        ax.annotate("restart %s" % r.get("n"), (int(r.get("checkpoint_step") or 0), 0.95),
                    xycoords=("data", "axes fraction"), fontsize=7, color="grey")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title(os.path.basename(run_dir))
    ax.legend()
    path = os.path.join(run_dir, "loss.png")
    fig.savefig(path, dpi=90, bbox_inches="tight")
    plt.close(fig)
    return path, None


def loss_trend(metrics):
    """(first, last) loss of the first host that logged one, for the summary."""
    by_host = {}
    for rec in metrics:
        if isinstance(rec.get("loss"), (int, float)):
            by_host.setdefault(rec.get("host"), []).append((rec.get("step", 0), rec["loss"]))
    for _host, pts in sorted(by_host.items(), key=lambda kv: str(kv[0])):
        pts.sort()
        return pts[0][1], pts[-1][1]
    return None


# ---------------------------------------------------------------------------- summary
def fmt_secs(seconds):
    seconds = int(round(seconds or 0))
    return "%dm%02ds" % (seconds // 60, seconds % 60) if seconds >= 60 else "%ds" % seconds


def summary_lines(rec, cost, trend=None, plot=None):
    lines = ["gpu.ops run %s: %s%s" % (rec.get("run_id"), rec.get("status"), (
        " (exit code %s)" % rec["exit_code"]) if rec.get("exit_code") not in (None, 0) else "")]
    if rec.get("message"):
        lines.append("  why: %s" % rec["message"])
    for inst in rec.get("instances", []):
        lines.append("  node %s: %s %s %s x%s at $%.3f/h%s" % (
            inst.get("name"), inst.get("provider"), inst.get("id"), inst.get("gpu_model"), inst.get("gpu_count"),
            float(inst.get("price_per_hour") or 0), " (destroyed)" if inst.get("destroyed_at") else " (RUNNING)"))
    for host in rec.get("hosts") or []:
        kind = "home lab" if host.get("kind") == "homelab" else "ssh"
        where = "%s@%s:%s" % (host.get("ssh_user") or "-", host.get("ssh_host"), host.get("ssh_port"))
        lines.append("  node %s: %s %s" % (host.get("name"), kind, where))
    lines += _state_lines(rec)
    steps = rec.get("steps") or {}
    if steps:
        order = sorted(steps, key=lambda k: (STEP_ORDER.index(k) if k in STEP_ORDER else len(STEP_ORDER), k))
        lines.append("  steps: " + ", ".join("%s %s" % (k, fmt_secs(steps[k])) for k in order))
    total = (cost or {}).get("total") or {}
    if cost and cost.get("instances"):
        billed = (" (billed $%.4f)" % total["billed_usd"]) if "billed_usd" in total else " (provider bill pending)"
        budget = rec.get("max_cost")
        of_budget = (" of $%.2f budget" % budget) if budget else ""
        lines.append("  cost: $%.4f estimated%s%s" % (total.get("estimated_usd", 0), billed, of_budget))
    watched = rec.get("watchdog") or {}
    if watched:
        bare = sorted(h for h, cred in watched.items() if not cred)
        lines.append("  watchdog: armed on %d node(s)%s" % (len(watched) - len(bare), (
            "; no instance credential on %s: gpuops reap is the backstop there" % ", ".join(bare)) if bare else ""))
    lines += _managed_lines(rec)
    if trend:
        lines.append("  loss: %.4f -> %.4f" % trend)
    lines.append("  results: %s" % rec.get("run_dir"))
    if plot:
        lines.append("  plot: %s" % plot)
    for cmd in rec.get("attach", []):
        lines.append("  attach: %s" % cmd)
    return lines


def _state_lines(rec):
    """What is still up, and the one command that ends it."""
    rid, state = rec.get("run_id"), rec.get("state")
    up = len(lifecycle.live_nodes(rec))
    if state == "kept":
        return ["  kept: %d node(s) stay up for debugging until %s (watchdog and gpuops reap); destroy them now with: "
                "gpuops down %s" % (up, rec.get("expires_at"), rid)]
    if state == "detached":
        return ["  detached: job %s runs on %d node(s); follow: gpuops logs %s -f; results and teardown: gpuops down %s"
                % (rec.get("job_id"), up, rid, rid)]
    if state == "tearing_down":
        return ["  NOT torn down: %d node(s) may still bill; run gpuops down %s again (or gpuops reap)" % (up, rid)]
    return []


def _managed_lines(rec):
    from ansible_collections.gpu.ops.plugins.plugin_utils._managed import recovery_lines

    return recovery_lines(rec.get("recoveries"))


# ---------------------------------------------------------------------------- how a run ended
def outcome(spec, failure=None, jobs=(), collected=(), status=None, message=None, ending="pipeline", record=None):
    """How a run ended, from what its plays learned: {status, exit_code, message, keep, keep_reason, final_state}.

    ``ending`` ``pipeline``: the pipeline's own end (a failure may keep the nodes, ``keep_on_failure``; a detached
    job runs on). ``down``: a teardown by hand or by the guardian: nothing is kept, and a status the run already
    decided (a kept failure, a detached job that succeeded) is never rewritten."""
    record = record or {}
    attach = [j.get("attach") for j in jobs if j.get("attach")]
    exit_code = next((j.get("exit_code") for j in jobs if j.get("exit_code") not in (None, "", 0, "0")), None)
    if record.get("status") in lifecycle.FINAL_OUTCOMES:
        status, message, exit_code = record["status"], record.get("message") or "", record.get("exit_code")
    elif status:
        pass  # given by the caller: the guardian (cancelled)
    elif failure:
        status, message = "failed", "%s: %s" % (failure.get("step", "?"), failure.get("msg", "?"))
    elif ending == "down" and record.get("kind") == "session" and not jobs:
        status, message = "ended", "the session was closed with gpuops down"
    elif ending == "pipeline" and spec.get("detach") and jobs:
        status, message = "running", "detached: the job runs on; follow it with the attach command"
    else:
        status, message = _status_from_jobs(jobs, collected)
    keep = ending == "pipeline" and bool(spec.get("keep_on_failure")) and status not in ("succeeded", "running")
    keep_reason = "keep_on_failure: the run's instances are kept for debugging" if keep else None
    final_state = "kept" if keep else "torn_down"
    if status == "running":
        keep, keep_reason, final_state = True, "the run is detached: its instances keep running", "detached"
    return {"status": status, "exit_code": _int_or_none(exit_code), "message": message or "", "keep": keep,
            "keep_reason": keep_reason, "attach": attach if status == "running" else [],
            "failure_step": (failure or {}).get("step"), "final_state": final_state}


def _status_from_jobs(jobs, collected):
    """(status, message) from the nodes' job outcomes, else from the collected job files (a teardown by hand)."""
    true = (True, "True", "true")
    if any(j.get("budget_exceeded") in true for j in jobs):
        return "budget_exceeded", next(j.get("msg") for j in jobs if j.get("budget_exceeded") in true)
    if any(j.get("preempted") in true for j in jobs):
        return "preempted", next(j.get("msg") for j in jobs if j.get("preempted") in true)
    if jobs and all(j.get("status") == "succeeded" for j in jobs):
        return "succeeded", ""
    if jobs and not all(j.get("status") == "running" for j in jobs):
        bad = next(j for j in jobs if j.get("status") != "succeeded")
        return "failed", "job %s: %s" % (bad.get("status"), bad.get("msg"))
    return _status_from_collected(collected)


def _status_from_collected(collected):
    """A run torn down by hand: what the collected job files say."""
    states = [(c.get("job") or {}).get("status") for c in collected if c.get("job")]
    if states and all(s == "succeeded" for s in states):
        return "succeeded", ""
    if any(s in ("failed", "bootstrap_failed", "bootstrap_timeout", "lost") for s in states):
        return "failed", "job %s" % next(s for s in states if s != "succeeded")
    return "cancelled", "torn down before the job finished"


def _int_or_none(value):
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def provenance(workspace, spec, instances):
    """provenance.json: what was deployed (the workspace role's record) and on what."""
    import ansible.release

    out = dict(workspace or {})
    out.update({"run_id": spec["run_id"], "image": spec.get("image"),
                "gpu_models": sorted(set(i.get("gpu_model") for i in instances if i.get("gpu_model"))),
                "ansible_version": ansible.release.__version__, "collection_version": collection_version()})
    return out


def collection_version():
    """From MANIFEST.json (an installed collection) or galaxy.yml (a checkout)."""
    root = os.path.abspath(os.path.join(os.path.dirname(__file__), os.pardir, os.pardir))
    manifest = read_json(os.path.join(root, "MANIFEST.json"))
    if manifest:
        return (manifest.get("collection_info") or {}).get("version")
    try:
        with open(os.path.join(root, "galaxy.yml")) as fh:
            for line in fh:
                if line.startswith("version:"):
                    return line.split(":", 1)[1].strip().strip("'\"")
    except OSError:
        pass
    return None
