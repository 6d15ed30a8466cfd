# -*- coding: utf-8 -*-
# Copyright: (c) 2026, gpu.ops maintainers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0), or at your option
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Ansible-side helpers shared by the gpu.ops modules: argument specs, provider construction, key and
label handling, teardown with retries, and the state machine of the ``*_instance`` modules.

PRIVATE to the collection: the API may change between releases. Everything that talks to a cloud
lives in http_client, provider and the provider files of the registry (no Ansible there); this file is the thin Ansible layer.
"""

from __future__ import annotations

import getpass
import os
import time
import traceback

from ansible.module_utils.basic import AnsibleModule, env_fallback, missing_required_lib

from ansible_collections.gpu.ops.plugins.module_utils import http_client as http
from ansible_collections.gpu.ops.plugins.module_utils import ssh as sshu
from ansible_collections.gpu.ops.plugins.module_utils._secret_env import hide_env
from ansible_collections.gpu.ops.plugins.module_utils.provider import ConfigError, OfferFilters, make_labels, parse_ttl, utc_iso
from ansible_collections.gpu.ops.plugins.module_utils import registry

TEARDOWN_DEADLINE = 120.0


def auth_argument_spec():
    """Connection options every gpu.ops module accepts (doc fragment gpu.ops.auth), so that one
    ``module_defaults: group/gpu.ops.all`` block serves every module."""
    spec = {}
    for opt in registry.options():  # each provider's options, as it declares them
        spec[opt.name] = dict(type="str", fallback=(env_fallback, [opt.env]))
        if opt.secret:
            spec[opt.name]["no_log"] = True
        if opt.default is not None:
            spec[opt.name]["default"] = opt.default
    spec.update(api_timeout=dict(type="float", default=30.0), api_deadline=dict(type="float", default=120.0))
    return spec


def provider_choices():
    """Choices of a module's ``providers`` / ``provider`` option: every registered provider."""
    return registry.names()


def instance_argument_spec():
    """SSH, wait and label options of the modules that create instances (doc fragment gpu.ops.instance)."""
    return dict(
        ssh_public_key=dict(type="str", no_log=False),
        ssh_public_key_file=dict(type="path", no_log=False),
        ssh_private_key_file=dict(type="path", no_log=False),
        known_hosts_file=dict(type="path"),
        wait=dict(type="bool", default=True),
        wait_timeout=dict(type="int", default=600),
        pull_timeout=dict(type="int", default=1800),
        poll_interval=dict(type="float", default=1.5),
        keep_on_failure=dict(type="bool", default=False),
        run_id=dict(type="str", fallback=(env_fallback, ["GPUOPS_RUN_ID"])),
        owner=dict(type="str"),
        ttl=dict(type="str", default="24h"),
    )


def filter_argument_spec():
    """Offer filters (doc fragment gpu.ops.offer_filters)."""
    return dict(
        gpu=dict(type="list", elements="str"),
        gpu_count=dict(type="int", default=1),
        min_vram_gb=dict(type="int"),
        max_price_per_hour=dict(type="float"),
        regions=dict(type="list", elements="str"),
        min_cuda_version=dict(type="str"),
        min_reliability=dict(type="float"),
        interruptible=dict(type="bool", default=False),
        verified_only=dict(type="bool", default=True),
    )


def ssh_user_spec():
    """``ssh_user`` of the modules that make instances on providers that do not report the SSH user."""
    return dict(type="str", default="root",
                fallback=(env_fallback, [c.ssh_user_env for c in registry.classes() if c.ssh_user_env]))


class GpuOpsModule:
    """An AnsibleModule plus what every gpu.ops module needs: providers, failures, teardown."""

    def __init__(self, argument_spec, **kwargs):
        spec = auth_argument_spec()
        spec.update(argument_spec)
        self.module = AnsibleModule(argument_spec=spec, **kwargs)
        self.params = self.module.params
        if "env" in spec:
            # the module reads the values from its own copy; results and logs see the names only
            self.params = dict(self.module.params)
            self.params["env"] = hide_env(self.module.params)
        if not http.HAS_REQUESTS:
            self.module.fail_json(msg=missing_required_lib("requests"), exception=str(http.REQUESTS_IMPORT_ERROR))
        self.result = {"changed": False}
        self._providers = {}
        self.created = []  # (provider, Instance) made in this call, for teardown on failure

    # ------------------------------------------------------------------ providers
    def client_kw(self):
        return {"timeout": self.params["api_timeout"], "deadline": self.params["api_deadline"]}

    def provider(self, name, **kw):
        """The provider ``name`` built from this module's options (``kw``: e.g. ssh_user, where it takes it)."""
        if name not in self._providers:
            self._providers[name] = registry.get(name).from_params(self.params, self.client_kw(), **kw)
        return self._providers[name]

    def configured_providers(self):
        """The providers whose API key is set, in registry order."""
        return [cls.name for cls in registry.classes() if cls.key_option() is not None and
                cls.configured(self.params.get)]

    def api_requests(self):
        n = 0
        for prov in self._providers.values():
            for c in prov.clients:
                n += c.stats["requests"]
        return n

    # ------------------------------------------------------------------ results
    def exit(self, **kw):
        self.result.update(kw)
        self.result.setdefault("api_requests", self.api_requests())
        self.module.exit_json(**self.result)

    def fail(self, msg, error=None, teardown=True, **kw):
        """Fail; first destroy what this call created (unless keep_on_failure)."""
        if teardown and self.created:
            kept = self.params.get("keep_on_failure")
            if kept:
                msg += "; kept %s (keep_on_failure=true)" % ", ".join(
                    "%s %s" % (prov.name, inst.id) for prov, inst in self.created)
            else:
                gone, left = self.teardown_created()
                if gone:
                    msg += "; destroyed what this task created: %s" % ", ".join(desc for _i, desc in gone)
                if left:
                    msg += "; COULD NOT DESTROY %s: destroy them by hand" % ", ".join(left)
                kw["destroyed"] = list(kw.get("destroyed") or []) + [i for i, _desc in gone]
                kw["not_destroyed"] = left
        self.result.update(kw)
        if error is not None:
            self.result["error"] = error.to_dict() if hasattr(error, "to_dict") else error
        self.result.setdefault("api_requests", self.api_requests())
        self.module.fail_json(msg=msg, **self.result)

    def fail_api(self, err, what=None):
        msg = err.message if what is None else "%s: %s" % (what, err.message)
        self.fail(msg, error=err)

    # ------------------------------------------------------------------ teardown
    def terminate(self, prov, inst, deadline=TEARDOWN_DEADLINE, known_hosts=None):
        """Destroy with retries on transient failures (5xx, 'Something went wrong') until the deadline."""
        end = time.monotonic() + deadline
        delay = 0.5
        while True:
            try:
                prov.terminate(inst.id)
                break
            except http.ApiError as e:
                if e.category not in (http.UNAVAILABLE, http.RATE_LIMITED, http.ERROR, http.AMBIGUOUS) or \
                        time.monotonic() + delay > end:
                    raise
                time.sleep(delay)
                delay = min(delay * 2, 10.0)
        if inst.ssh_host and inst.ssh_port:
            for path in self.known_hosts_files(inst, known_hosts):
                sshu.forget_host(path, inst.ssh_host, inst.ssh_port, self.run_command)

    def known_hosts_files(self, inst, used=None):
        """Every known_hosts file a gpu.ops task may have trusted ``inst``'s host key into: the one this task used,
        ``known_hosts_file``, else the default files of the instance's run (its run_id label), of this task's
        run_id and without a run id. Teardown always removes the key (a later instance on the same address and
        port has another one)."""
        p = self.params
        paths = [used, p.get("known_hosts_file")]
        if not p.get("known_hosts_file"):
            paths += [default_known_hosts((inst.labels or {}).get("run_id")), default_known_hosts(p.get("run_id")),
                      default_known_hosts(None)]
        out = []
        for path in paths:
            if path and os.path.expanduser(path) not in out:
                out.append(os.path.expanduser(path))
        return out

    def teardown_created(self):
        gone, left = [], []
        for prov, inst in list(self.created):
            try:
                self.terminate(prov, inst, known_hosts=getattr(self, "known_hosts", None))
                gone.append((str(inst.id), "%s %s (%s)" % (prov.name, inst.id, inst.name)))
            except http.ApiError as e:
                left.append("%s %s (%s): %s" % (prov.name, inst.id, inst.name, e.message))
        self.created = []
        return gone, left

    # ------------------------------------------------------------------ common option handling
    def labels(self):
        p = self.params
        try:
            ttl = parse_ttl(p["ttl"]) if p.get("ttl") else None
        except ValueError as e:
            raise ConfigError(str(e)) from None
        owner = p.get("owner") or os.environ.get("GPUOPS_OWNER") or _whoami()
        run_id = p.get("run_id") or "manual-%s" % time.strftime("%Y%m%d-%H%M%S", time.gmtime())
        expires = utc_iso(time.time() + ttl) if ttl else None
        return make_labels(run_id, owner, expires)

    def check_wait_options(self):
        p = self.params
        if p.get("wait_timeout") is not None and p["wait_timeout"] <= 0:
            raise ConfigError("wait_timeout must be greater than 0 seconds (got %s)" % p["wait_timeout"])
        if p.get("poll_interval") is not None and p["poll_interval"] <= 0:
            raise ConfigError("poll_interval must be greater than 0 seconds")

    def ssh_setup(self, need_public_key):
        """Check keys before anything is rented; return (public_key or None, ssh options for the Waiter)."""
        p = self.params
        priv = None
        if p.get("ssh_private_key_file"):
            priv = sshu.check_private_key(p["ssh_private_key_file"])
        pub = None
        if need_public_key or p.get("ssh_public_key") or p.get("ssh_public_key_file"):
            pub = sshu.load_public_key(p.get("ssh_public_key"), p.get("ssh_public_key_file"), priv)
        kh = p.get("known_hosts_file") or default_known_hosts(p.get("run_id"))
        self.known_hosts = sshu.ensure_known_hosts(kh) if not self.module.check_mode else os.path.expanduser(kh)
        return pub, {"private_key": priv, "known_hosts": self.known_hosts, "check_login": True,
                     "run": self.run_command}

    def run_command(self, argv):
        return self.module.run_command(argv)

    def filters(self, cloud_type=None):
        p = self.params
        if p.get("gpu_count") is not None and p["gpu_count"] < 1:
            raise ConfigError("gpu_count must be at least 1")
        if p.get("max_price_per_hour") is not None and p["max_price_per_hour"] <= 0:
            raise ConfigError("max_price_per_hour must be greater than 0")
        if p.get("min_reliability") is not None and not 0 <= p["min_reliability"] <= 1:
            raise ConfigError("min_reliability must be between 0 and 1")
        return OfferFilters(gpu=p.get("gpu"), gpu_count=p.get("gpu_count") or 1, min_vram_gb=p.get("min_vram_gb"),
                            max_price_per_hour=p.get("max_price_per_hour"), regions=p.get("regions"),
                            min_cuda_version=p.get("min_cuda_version"), min_reliability=p.get("min_reliability"),
                            interruptible=p.get("interruptible"), cloud_type=cloud_type,
                            verified_only=p.get("verified_only", True), min_disk_gb=p.get("disk_gb"))

    def guard(self, fn):
        """Run ``fn``; an unexpected exception still tears down what this call created, then fails."""
        try:
            return fn()
        except ConfigError as e:
            return self.fail(e.message, error=e)
        except http.ApiError as e:
            return self.fail_api(e)
        except Exception as e:  # pylint: disable=broad-except
            return self.fail("unexpected error: %s: %s" % (type(e).__name__, e), exception=traceback.format_exc())

    def log(self, msg):
        try:
            self.module.log("gpu.ops: %s" % msg)
        except Exception:  # pylint: disable=broad-except
            pass


def default_known_hosts(run_id):
    """Where host keys are trusted without known_hosts_file: one file per run (doc fragment gpu.ops.instance)."""
    return os.path.join("~", ".cache", "gpuops", "known_hosts-%s" % run_id if run_id else "known_hosts")


def _whoami():
    try:
        return getpass.getuser()
    except Exception:  # pylint: disable=broad-except
        return "unknown"


def connection_facts(inst, private_key, known_hosts):
    """Host vars to reach an instance with Ansible (for add_host)."""
    if not inst.ssh_host or not inst.ssh_port:
        return None
    args = "-o UserKnownHostsFile=%s -o StrictHostKeyChecking=accept-new" % known_hosts
    if private_key:
        args += " -o IdentitiesOnly=yes"
    facts = {"ansible_host": inst.ssh_host, "ansible_port": int(inst.ssh_port), "ansible_user": inst.ssh_user,
             "ansible_ssh_common_args": args}
    if private_key:
        facts["ansible_ssh_private_key_file"] = private_key
    return facts


def instance_result(inst, private_key=None, known_hosts=None, wait=None):
    d = inst.to_dict()
    d["connection"] = connection_facts(inst, private_key, known_hosts) if known_hosts else None
    if wait is not None:
        d["wait"] = wait
    return d


class InstanceStateMachine:
    """present/started/stopped/restarted/absent for one named instance on one provider.

    Subclasses provide ``prepare_create()`` (validation and reads only, before any money is spent;
    returns an opaque plan), ``create(plan)`` (returns the Instance, registering it in
    ``self.m.created`` at once) and ``start_kwargs()``.
    """

    kind = "instance"

    def __init__(self, m, provider, name):
        self.m = m
        self.p = m.params
        self.prov = provider
        self.name = name
        self.ssh_opts = None
        self.public_key = None
        self.waited = None

    def label(self, inst):
        return "%s %s %r (%s)" % (self.prov.name, self.kind, inst.name, inst.id)

    # hooks
    def prepare_create(self):
        raise NotImplementedError

    def create(self, plan):
        raise NotImplementedError

    def start_kwargs(self):
        return {}

    def drift(self, inst):
        """What the existing instance has other than asked (it is never recreated for that): a list of text."""
        return []

    def stopped_grace(self):
        """Seconds a just-started instance may still read 'stopped' before that counts as a failure."""
        return 30.0

    # ------------------------------------------------------------------ helpers
    def lookup(self):
        found = self.prov.find_by_name(self.name)
        return found

    def wait_ready(self, inst, created, started=False):
        """Wait for API running + SSH; on failure destroy what was created here (unless keep_on_failure)."""
        if not self.p["wait"]:
            return inst
        if created and inst.ssh_host and inst.ssh_port:
            sshu.forget_host(self.m.known_hosts, inst.ssh_host, inst.ssh_port, self.m.run_command)
        user = self.p.get("ssh_user")
        opts = dict(self.ssh_opts)
        if user:
            opts["user_override"] = user
        target = sshu.Target(inst.id, self.prov.get, inst, stopped_grace=self.stopped_grace() if started else 0.0,
                             label=self.label(inst))
        sshu.Waiter(self.p["wait_timeout"], self.p["poll_interval"], ssh=opts, log=self.m.log,
                    pull_timeout=self.p.get("pull_timeout")).wait([target])
        self.waited = sshu.wait_report(target)
        if not target.ready:
            msg = sshu.describe_failure(target, self.p["wait_timeout"])
            if not created:
                msg += "; it existed before this task and was left as it is"
            self.m.result["instance"] = instance_result(target.instance, wait=self.waited)
            self.m.fail(msg, wait=self.waited)
        # a newly reported address: forget stale host keys only for instances created here (done above)
        return target.instance

    def run(self):
        m = self.m
        state = self.p["state"]
        try:
            m.check_wait_options()
            if state != "absent":
                self.public_key, self.ssh_opts = m.ssh_setup(need_public_key=False)
                m.labels()  # bad ttl/run_id/owner fail here, before any API call
            found = self.lookup()
        except ConfigError as e:
            return m.fail(e.message, error=e)
        except http.ApiError as e:
            return m.fail_api(e)

        if state == "absent":
            return self.absent(found)
        if len(found) > 1:
            return m.fail("%d %s %ss are named %r (%s); names must be unique for state=%s. Destroy the extras or "
                          "use state=absent" % (len(found), self.prov.name, self.kind, self.name,
                                                ", ".join(str(i.id) for i in found), state), teardown=False,
                          instances=[i.to_dict() for i in found])
        inst = found[0] if found else None
        try:
            if state in ("present", "started"):
                return self.present(inst, start=state == "started")
            if state == "stopped":
                return self.stopped(inst)
            return self.restarted(inst)
        except ConfigError as e:
            return m.fail(e.message, error=e)
        except http.ApiError as e:
            return m.fail_api(e)

    def _exit(self, inst, changed, **kw):
        res = instance_result(inst, self.ssh_opts["private_key"] if self.ssh_opts else None,
                              self.m.known_hosts if self.ssh_opts else None, self.waited) if inst else None
        self.m.exit(changed=changed, instance=res, **kw)

    def present(self, inst, start):
        m = self.m
        if inst is None:
            if not self.public_key:  # only a new instance needs the key put on it
                self.public_key = sshu.load_public_key(private_key_file=self.ssh_opts["private_key"])
            plan = self.prepare_create()
            if m.module.check_mode:
                return m.exit(changed=True, instance=None, planned=plan.get("summary") if isinstance(plan, dict) else None,
                              msg="would create %s %s %r" % (self.prov.name, self.kind, self.name))
            inst = self.create(plan)
            inst = self.wait_ready(inst, created=True)
            return self._exit(inst, True, created=True)
        changed = False
        for diff in self.drift(inst):
            m.module.warn("%s exists with %s; it is kept as it is (destroy it with state=absent to change that)" % (
                self.label(inst), diff))
        if inst.status == "error":
            return m.fail("%s is in error state (%s)%s; destroy it (state=absent) and create it again" % (
                self.label(inst), inst.provider_status, ": %s" % inst.status_message if inst.status_message else ""),
                teardown=False, instance=inst.to_dict())
        if start and inst.status == "stopped":
            changed = True
            if m.module.check_mode:
                return m.exit(changed=True, instance=inst.to_dict(), msg="would start %s" % self.label(inst))
            inst = self.prov.start(inst, **self.start_kwargs()) or inst
            return self._exit(self.wait_ready(inst, created=False, started=True), changed)
        if inst.status in ("pending", "running") and not m.module.check_mode:
            inst = self.wait_ready(inst, created=False)
        return self._exit(inst, changed)

    def stopped(self, inst):
        m = self.m
        if inst is None:
            return m.fail("%s %s %r does not exist; state=stopped does not create instances (use state=present "
                          "first)" % (self.prov.name, self.kind, self.name), teardown=False)
        if inst.status == "stopped":
            return self._exit(inst, False)
        if m.module.check_mode:
            return m.exit(changed=True, instance=inst.to_dict(), msg="would stop %s" % self.label(inst))
        self.prov.stop(inst)
        inst = self._wait_status(inst, "stopped")
        return self._exit(inst, True)

    def restarted(self, inst):
        m = self.m
        if inst is None:
            return m.fail("%s %s %r does not exist; state=restarted does not create instances (use state=present "
                          "first)" % (self.prov.name, self.kind, self.name), teardown=False)
        if m.module.check_mode:
            return m.exit(changed=True, instance=inst.to_dict(), msg="would restart %s" % self.label(inst))
        if inst.status == "stopped":
            new = self.prov.start(inst, **self.start_kwargs()) or inst
        else:
            new = self.prov.restart(inst) or inst
        return self._exit(self.wait_ready(new, created=False, started=True), True)

    def absent(self, found):
        m = self.m
        found, kept = self.ours(found)
        if not found:
            return m.exit(changed=False, instance=None, destroyed=[], kept=kept)
        if m.module.check_mode:
            return m.exit(changed=True, instance=found[0].to_dict(), destroyed=[i.id for i in found], kept=kept,
                          msg="would destroy %s" % ", ".join(self.label(i) for i in found))
        for inst in found:
            self.m.terminate(self.prov, inst)  # removes its host key from known_hosts_file or the default files
        return m.exit(changed=True, instance=found[0].to_dict(), destroyed=[i.id for i in found], kept=kept)

    def ours(self, found):
        """(instances to destroy, the others) by name and, when given, run_id/owner labels: an instance of the same
        name from another run or owner is not this task's to destroy (the same rule as gpu.ops.gpu_instance)."""
        want = dict((k, self.p[k]) for k in ("run_id", "owner") if self.p.get(k))
        mine = [i for i in found if all((i.labels or {}).get(k) == v for k, v in want.items())]
        kept = [{"id": str(i.id), "name": i.name, "run_id": (i.labels or {}).get("run_id"),
                 "owner": (i.labels or {}).get("owner")} for i in found if i not in mine]
        if kept:
            self.m.module.warn("left %d %s(s) named %r that are not labelled %s: %s" % (
                len(kept), self.kind, self.name, ", ".join("%s=%s" % kv for kv in sorted(want.items())),
                ", ".join(k["id"] for k in kept)))
        return mine, kept

    def _wait_status(self, inst, status):
        """Wait (no SSH) until the API reports ``status``; deadline wait_timeout."""
        if not self.p["wait"]:
            return inst
        end = time.monotonic() + self.p["wait_timeout"]
        delay = 0.1
        cur = inst
        while True:
            cur = self.prov.get(inst.id) or cur
            if cur.status == status:
                return cur
            if time.monotonic() + delay > end:
                self.m.fail("%s did not reach %s within %ss (API status %s)" % (
                    self.label(inst), status, self.p["wait_timeout"], cur.provider_status), teardown=False)
            time.sleep(delay)
            delay = min(delay * 1.5, self.p["poll_interval"])
