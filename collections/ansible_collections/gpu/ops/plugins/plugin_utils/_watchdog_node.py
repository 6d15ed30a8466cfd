# -*- coding: utf-8 -*-
# Copyright: gpu.ops contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0), or at your option
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Node side of gpu.ops.node_watchdog: a dead-man switch that destroys its own cloud instance.

PRIVATE to the collection, may change without notice. Installed by the action plugin (never imported on the
node) as ``~/.bifrost/bin/gpuops-watchdog-<hash>.py``; standard library only, Python >= 3.9.

Protocol (as every node helper): stdin starts with one JSON line of arguments; the answer is one JSON line.
Commands:
  arm        write the config, start the daemon unless one runs (restart it when its version is older),
             touch the heartbeat. Idempotent: changed only when the config or the daemon changed.
  heartbeat  touch the heartbeat; restart the daemon when armed and it is not running (a restarted node), or
             arm it from the settings sent along when the node lost its own (a wiped container disk).
  disarm     stop the daemon and remove the config (home-lab nodes, or a run that keeps its instances).
  status     what the daemon last decided (read-only).
  run        the daemon itself (started by arm/heartbeat/resume, never by hand).
  resume     start the daemon from the saved config (a container start hook: ``gpuops-watchdog-resume``).

The daemon wakes every ``interval`` seconds and destroys its own instance through the provider's API with
the instance's own key (Vast ``CONTAINER_API_KEY``/``CONTAINER_ID``; RunPod's pod key ``RUNPOD_API_KEY`` with
``RUNPOD_POD_ID``) when ``expires_at`` has passed, when the heartbeat has been silent for ``idle_timeout``
while no job runs, or when price x uptime reached ``max_cost`` (it stops the jobs first). Every decision goes
to ``~/.bifrost/watchdog/watchdog.log``. One daemon per node: it holds an exclusive lock for its lifetime.
The HTTP call runs in a forked child, so the daemon itself never loads the HTTP and TLS modules.
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import sys
import time

ROOT = os.path.expanduser("~/.bifrost")
WD_DIR = os.path.join(ROOT, "watchdog")
CONFIG = os.path.join(WD_DIR, "config.json")
STATE = os.path.join(WD_DIR, "state.json")
LOCK = os.path.join(WD_DIR, "lock")
LOG = os.path.join(WD_DIR, "watchdog.log")
DISARMED = os.path.join(WD_DIR, "disarmed")  # the controller disarmed it on purpose: heartbeats do not re-arm
HEARTBEAT = os.path.join(ROOT, "heartbeat")
JOBS = os.path.join(ROOT, "jobs")
RESUME = os.path.join(ROOT, "bin", "gpuops-watchdog-resume")
ACTIVE = ("starting", "bootstrapping", "running")
FINAL = ("succeeded", "failed", "bootstrap_failed", "bootstrap_timeout", "killed")
CONFIG_KEYS = ("provider", "instance_id", "run_id", "expires_at", "idle_timeout", "max_cost", "price_per_hour",
               "started_at", "interval", "stop_grace", "destroy")
# The controller sends how this provider's instance destroys itself (the provider declares it: Provider.
# instance_credential), so the node holds no table of providers: the variables holding the instance's own key
# and id, the variable that overrides the API URL (a simulator), the public URL, the DELETE path (%s: the id)
# and its JSON body (or None).
RECIPE_KEYS = ("key_env", "id_env", "url_env", "public_url", "destroy_path")


# ---------------------------------------------------------------------------------------------- small parts
def now():
    """Wall time, plus the offset in GPUOPS_CLOCK_OFFSET_FILE when set: only the simulator sets it, so that a
    test can advance its virtual clock for the node too. On a cloud node the variable does not exist."""
    path = os.environ.get("GPUOPS_CLOCK_OFFSET_FILE")
    offset = 0.0
    if path:
        try:
            with open(path) as fh:
                offset = float(fh.read().strip() or 0)
        except (OSError, ValueError):
            pass
    return time.time() + offset


def iso(ts):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts)) if ts else None


def read_json(path, default=None):
    try:
        with open(path) as fh:
            return json.load(fh)
    except (OSError, ValueError):
        return default


def write_atomic(path, text, mode=0o600):
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    tmp = "%s.tmp-%d" % (path, os.getpid())
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.replace(tmp, path)


def log(event, **fields):
    """One JSON line per decision; times are the (virtual) clock the decisions use."""
    os.makedirs(WD_DIR, mode=0o700, exist_ok=True)
    line = json.dumps(dict({"at": iso(now()), "event": event}, **fields), sort_keys=True)
    with open(LOG, "a") as fh:
        fh.write(line + "\n")


def pid_alive(pid):
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open("/proc/%d/stat" % pid) as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def daemon_pid():
    """The pid of the running daemon (it holds the lock), else None."""
    try:
        fd = os.open(LOCK, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:  # held: a daemon runs
        state = read_json(STATE, {}) or {}
        pid = state.get("pid")
        return pid if pid_alive(pid) else -1
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def read_int(path):
    try:
        with open(path) as fh:
            return int(fh.read().strip())
    except (OSError, ValueError):
        return None


def read_str(path):
    try:
        with open(path) as fh:
            return fh.read().strip()
    except OSError:
        return None


# ---------------------------------------------------------------------------------------------- credentials
def _proc1_env():
    """The container's environment as docker gave it to PID 1 (readable as root on Vast and RunPod): SSH sessions
    do not always carry it."""
    try:
        with open("/proc/1/environ", "rb") as fh:
            raw = fh.read()
    except OSError:
        return {}
    out = {}
    for entry in raw.split(b"\0"):
        k, sep, v = entry.partition(b"=")
        if sep:
            out[k.decode("utf-8", "replace")] = v.decode("utf-8", "replace")
    return out


def recipe_of(cfg):
    """The self-destroy recipe of a config (see RECIPE_KEYS), or None when it has none (or a broken one)."""
    recipe = (cfg or {}).get("destroy")
    if isinstance(recipe, dict) and all(isinstance(recipe.get(k), str) for k in RECIPE_KEYS):
        return recipe
    return None


def credential(recipe):
    """(key, instance id, api url, where found) or (None, None, url, reason) for the instance's own key."""
    if recipe is None:
        return None, None, None, "the provider gives its instances no credential of their own"
    key_var, id_var, url_var, public = (recipe[k] for k in RECIPE_KEYS[:4])
    for source, env in (("environment", os.environ), ("/proc/1/environ", None)):
        env = env if env is not None else _proc1_env()
        if env.get(key_var) and env.get(id_var):
            return env[key_var], env[id_var], (env.get(url_var) or os.environ.get(url_var) or public), source
    return None, None, os.environ.get(url_var) or public, "%s/%s not set on this node" % (key_var, id_var)


# ---------------------------------------------------------------------------------------------- jobs
def jobs():
    """[(job_id, job_dir, active)] from ~/.bifrost/jobs/*: active while its status is not final and its runner
    (or its bootstrap) lives. A status the runner never finished is not a running job."""
    out = []
    try:
        names = sorted(os.listdir(JOBS))
    except OSError:
        return out
    for name in names:
        d = os.path.join(JOBS, name)
        status = read_str(os.path.join(d, "status"))
        active = status in ACTIVE and pid_alive(read_int(os.path.join(d, "pid")))
        if not active and not (os.path.exists(os.path.join(d, "bootstrap_done"))
                               or os.path.exists(os.path.join(d, "bootstrap_failed"))):
            active = pid_alive(read_int(os.path.join(d, "bootstrap.pid")))
        out.append((name, d, bool(active)))
    return out


def stop_jobs(grace):
    """TERM each active job's runner (it records ``killed``), KILL what is left after ``grace`` seconds."""
    stopped = []
    for name, d, active in jobs():
        if not active:
            continue
        write_atomic(os.path.join(d, "kill_requested"), iso(now()) + "\n", 0o644)
        pids = [p for p in (read_int(os.path.join(d, "pid")), read_int(os.path.join(d, "bootstrap.pid"))) if p]
        for pid in pids:
            _signal(pid, signal.SIGTERM)
        end = time.monotonic() + grace
        delay = 0.05
        while time.monotonic() < end and any(pid_alive(p) for p in pids):
            time.sleep(delay)
            delay = min(delay * 2, 1.0)
        for pid in pids:
            if pid_alive(pid):  # only what is still there: a pid that ended may already be someone else's
                _signal(pid, signal.SIGKILL)
        child = read_int(os.path.join(d, "child_pid"))
        if child and read_str(os.path.join(d, "status")) not in FINAL:
            _signal(-child, signal.SIGKILL)  # the runner could not stop its command's process group
        stopped.append({"job_id": name, "status": read_str(os.path.join(d, "status"))})
    return stopped


def _signal(pid, sig):
    try:
        if pid < 0:
            os.killpg(-pid, sig)
        else:
            os.kill(pid, sig)
    except OSError:
        pass


# ---------------------------------------------------------------------------------------------- decisions
def heartbeat_at():
    try:
        with open(HEARTBEAT) as fh:
            return float(fh.read().strip())
    except (OSError, ValueError):
        return None


def decide(cfg, t, last_activity):
    """(reason, details) when the instance must go, else (None, details)."""
    details = {"now": iso(t)}
    expires = cfg.get("expires_at")
    if expires and t >= expires:
        return "expired", dict(details, expires_at=iso(expires))
    price, budget = cfg.get("price_per_hour"), cfg.get("max_cost")
    if price and budget:
        spent = price * max(0.0, t - cfg["started_at"]) / 3600.0
        details["spent_usd"] = round(spent, 4)
        if spent >= budget:
            return "budget", dict(details, max_cost=budget, price_per_hour=price)
    idle = cfg.get("idle_timeout")
    if idle:
        silent = t - last_activity
        details["silent_s"] = round(silent, 1)
        if silent >= idle:
            return "idle", dict(details, idle_timeout=idle, last_activity=iso(last_activity))
    return None, details


def destroy_in_child(cfg):
    """destroy() in a forked child: the HTTP and TLS modules (~7 MiB) load there and go with it, so the daemon
    keeps its small footprint however many attempts it makes."""
    pid = os.fork()
    if pid == 0:
        ok = False
        try:
            ok = destroy(cfg)
        finally:
            os._exit(0 if ok else 1)
    _pid, status = os.waitpid(pid, 0)
    return os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0


def _rss_kib(field="VmHWM"):
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return None


def destroy(cfg):
    """DELETE our own instance with its own key. True when it is gone (or was already)."""
    provider = cfg["provider"]
    recipe = recipe_of(cfg)
    key, iid, url, source = credential(recipe)
    if not key:
        log("no_credential", provider=provider, reason=source,
            hint="this provider gave the node no instance key: the reaper (gpu.ops.reap) must clean up")
        return False
    if cfg.get("instance_id") and str(cfg["instance_id"]) != str(iid):
        log("refused", reason="the node's instance id %s is not the armed instance %s" % (iid, cfg["instance_id"]))
        return False
    log("destroying", provider=provider, instance_id=iid, credential=source)
    try:
        body = recipe.get("destroy_body")
        status, body = http_delete(url.rstrip("/") + recipe["destroy_path"] % iid, key,
                                   body.encode("utf-8") if isinstance(body, str) else None)
    except (OSError, ValueError) as exc:  # connection, TLS, timeout, a bad URL
        log("destroy_failed", error=str(exc)[:300], peak_rss_kib=_rss_kib())
        return False
    if status in (200, 202, 204, 404):  # 404: already gone
        log("destroyed", status=status, instance_id=iid, peak_rss_kib=_rss_kib())
        return True
    log("destroy_failed", status=status, body=body[:300].decode("utf-8", "replace"), peak_rss_kib=_rss_kib())
    return False


def http_delete(url, key, body, timeout=30):
    """(status, first bytes of the body) of one DELETE; http.client directly (no redirects, no proxies)."""
    import http.client
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("not an http(s) URL: %r" % url)
    cls = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    conn = cls(parts.hostname, parts.port, timeout=timeout)
    headers = {"Authorization": "Bearer " + key, "User-Agent": "gpuops-watchdog", "Accept": "application/json"}
    if body is not None:
        headers["Content-Type"] = "application/json"
    try:
        conn.request("DELETE", parts.path + ("?" + parts.query if parts.query else ""), body=body, headers=headers)
        resp = conn.getresponse()
        return resp.status, resp.read(2048)
    except http.client.HTTPException as exc:
        raise OSError("HTTP error: %s" % exc) from exc
    finally:
        conn.close()


# ---------------------------------------------------------------------------------------------- the daemon
def load_config():
    cfg = read_json(CONFIG)
    return cfg if isinstance(cfg, dict) and cfg.get("provider") else None


def run_daemon():
    os.makedirs(WD_DIR, mode=0o700, exist_ok=True)
    lock = os.open(LOCK, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return 0  # another daemon runs: exactly one per node
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    cfg = load_config()
    if cfg is None:
        return 0
    me = os.path.abspath(__file__)
    log("started", pid=os.getpid(), helper=os.path.basename(me), config=_public(cfg),
        credential=credential(recipe_of(cfg))[3])
    state = {"pid": os.getpid(), "helper": me, "started": iso(now())}
    mtime, last_activity, backoff = None, max(heartbeat_at() or 0, cfg.get("armed_at") or now()), 0.0
    while True:
        m = _mtime(CONFIG)
        if m != mtime:
            cfg, mtime = load_config(), m
            if cfg is None:
                log("disarmed")
                return 0
        t = now()
        active = [name for name, _d, act in jobs() if act]
        last_activity = max(last_activity, heartbeat_at() or 0, t if active else 0)
        reason, details = decide(cfg, t, last_activity)
        state.update(checked_at=t, jobs_active=active, decision=reason, details=details)
        write_atomic(STATE, json.dumps(state, sort_keys=True) + "\n")
        if reason and time.monotonic() >= backoff:
            if state.get("acting") != reason:
                log("trigger", reason=reason, jobs_active=active, **details)
                state["acting"] = reason
            if reason == "budget" and active:
                log("jobs_stopped", jobs=stop_jobs(cfg.get("stop_grace", 30)))
            if destroy_in_child(cfg):
                return 0  # on a cloud the container goes with the instance; nothing is left to watch
            state["failures"] = state.get("failures", 0) + 1
            backoff = time.monotonic() + min(300.0, 5.0 * 2 ** min(state["failures"], 6))
            write_atomic(STATE, json.dumps(state, sort_keys=True) + "\n")
        time.sleep(max(0.05, float(cfg.get("interval", 15))))


def _mtime(path):
    try:
        return os.stat(path).st_mtime_ns
    except OSError:
        return None


def _public(cfg):
    return {k: cfg.get(k) for k in CONFIG_KEYS if cfg.get(k) is not None}


def spawn():
    """Start the daemon detached (own session, no terminal, outside any tmux) and wait until it holds the lock."""
    import subprocess

    os.makedirs(WD_DIR, mode=0o700, exist_ok=True)
    with open(os.devnull, "rb") as devnull, open(os.path.join(WD_DIR, "daemon.err"), "ab") as err:
        proc = subprocess.Popen([sys.executable, os.path.abspath(__file__), "run"], stdin=devnull, stdout=err,
                                stderr=err, cwd=os.path.expanduser("~"), close_fds=True, start_new_session=True)
    end = time.monotonic() + 10
    delay = 0.01
    while time.monotonic() < end:
        pid = daemon_pid()
        if pid and pid > 0 and (read_json(STATE, {}) or {}).get("pid") == pid:
            return pid
        if proc.poll() is not None and not daemon_pid():
            raise RuntimeError("the watchdog exited at once (rc %s): %s" % (proc.returncode, _tail_err()))
        time.sleep(delay)
        delay = min(delay * 2, 0.2)
    raise RuntimeError("the watchdog did not start within 10 s: %s" % _tail_err())


def _tail_err():
    try:
        with open(os.path.join(WD_DIR, "daemon.err"), "rb") as fh:
            return fh.read()[-500:].decode("utf-8", "replace").strip()
    except OSError:
        return ""


def stop_daemon():
    pid = daemon_pid()
    if not pid or pid < 0:
        return False
    _signal(pid, signal.SIGTERM)
    end = time.monotonic() + 10
    while time.monotonic() < end and pid_alive(pid):
        time.sleep(0.05)
    if pid_alive(pid):
        _signal(pid, signal.SIGKILL)
    return True


# ---------------------------------------------------------------------------------------------- commands
def touch_heartbeat():
    write_atomic(HEARTBEAT, "%.3f\n" % now(), 0o644)


def write_resume_hook():
    text = ("#!/bin/sh\n# gpu.ops: start the node watchdog again after a container restart (onstart / start command)\n"
            "exec %s %s resume </dev/null >/dev/null 2>&1\n" % (_shq(sys.executable), _shq(os.path.abspath(__file__))))
    if read_str(RESUME) != text.strip():
        write_atomic(RESUME, text, 0o755)
        return True
    return False


def _shq(s):
    return "'" + s.replace("'", "'\"'\"'") + "'"


def cmd_arm(args):
    old = load_config() or {}
    t = now()
    cfg = {k: args.get(k) for k in CONFIG_KEYS if args.get(k) is not None}
    cfg["started_at"] = args.get("started_at") or old.get("started_at") or t
    cfg.setdefault("interval", 15)
    cfg.setdefault("stop_grace", 30)
    key, iid, _url, source = credential(recipe_of(cfg))
    if cfg.get("instance_id") and iid and str(cfg["instance_id"]) != str(iid):
        return {"failed": True, "msg": "this node is instance %s, not %s: refusing to arm its watchdog"
                                       % (iid, cfg["instance_id"])}
    config_changed = _public(old) != _public(cfg)
    pid = daemon_pid()
    stale = bool(pid) and (read_json(STATE, {}) or {}).get("helper") != os.path.abspath(__file__)
    result = {"changed": config_changed or not pid or stale, "config_changed": config_changed,
              "credential": bool(key), "credential_source": source, "log": LOG, "config": _public(cfg)}
    if args.get("_check_mode"):
        return dict(result, pid=pid if pid and pid > 0 else None)
    if os.path.exists(DISARMED):
        os.unlink(DISARMED)
    if config_changed:
        write_atomic(CONFIG, json.dumps(dict(cfg, armed_at=old.get("armed_at") or t), sort_keys=True) + "\n")
        log("armed" if not old else "config_changed", config=_public(cfg))
    touch_heartbeat()
    write_resume_hook()
    if stale:
        stop_daemon()
        pid = None
    if not pid:
        pid = spawn()
    result["pid"] = pid
    return result


def cmd_heartbeat(args):
    """Touch the heartbeat. A node that restarted lost the daemon (and on RunPod the container disk with its
    settings): start it again, from the settings on the node or, when they are gone, from the ones sent along."""
    armed = load_config() is not None
    if not armed and args.get("provider") and not os.path.exists(DISARMED):
        if args.get("_check_mode"):
            return {"changed": True, "armed": False, "restarted": True}
        result = cmd_arm(args)
        if not result.get("failed"):
            log("rearmed", by="heartbeat", settings="sent with the heartbeat")
        return dict(result, armed=not result.get("failed"), restarted=True, heartbeat=iso(now()))
    if not args.get("_check_mode"):
        touch_heartbeat()
    result = {"changed": False, "armed": armed, "heartbeat": iso(now())}
    if armed and not daemon_pid() and not args.get("_check_mode"):
        log("rearmed", by="heartbeat")  # the node restarted, or the daemon died: start it again
        result.update(changed=True, pid=spawn(), restarted=True)
    return result


def cmd_disarm(args):
    armed = load_config() is not None or bool(daemon_pid())
    if not armed or args.get("_check_mode"):
        return {"changed": armed}
    write_atomic(DISARMED, iso(now()) + "\n")
    try:
        os.unlink(CONFIG)
    except OSError:
        pass
    stop_daemon()
    log("disarmed", by="controller")
    return {"changed": True}


def cmd_status(_args):
    pid = daemon_pid()
    return {"changed": False, "armed": load_config() is not None, "pid": pid if pid and pid > 0 else None,
            "state": read_json(STATE, {}), "config": _public(load_config() or {})}


def main(argv=None, stdin=None, stdout=None):
    argv = sys.argv[1:] if argv is None else argv
    command = argv[0] if argv else ""
    if command == "run":
        return run_daemon()
    if command == "resume":
        if load_config() is not None and not daemon_pid():
            log("rearmed", by="resume hook")
            spawn()
        return 0
    stdout = stdout or sys.stdout
    header = (stdin or sys.stdin.buffer).readline()
    try:
        args = json.loads(header.decode("utf-8") if header else "{}")
        handler = {"arm": cmd_arm, "heartbeat": cmd_heartbeat, "disarm": cmd_disarm, "status": cmd_status}.get(command)
        result = handler(args) if handler else {"failed": True, "msg": "unknown command %r" % command}
    except (OSError, RuntimeError, ValueError) as exc:
        result = {"failed": True, "msg": str(exc)}
    stdout.write(json.dumps(result) + "\n")
    stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
