# -*- coding: utf-8 -*-
# Copyright: (c) 2026, gpu.ops maintainers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0), or at your option
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: cloud
short_description: GPU instances on RunPod and Vast.ai as one inventory
version_added: 0.1.0
author:
  - gpu.ops maintainers (@gpu-ops)
description:
  - Lists the GPU instances of a RunPod and/or Vast.ai account and makes each running instance with a direct
    SSH endpoint a host, with C(ansible_host), C(ansible_port) and C(ansible_user) set from the provider's
    SSH mapping, and normalized facts under one prefix (C(gpuops_) by default).
  - RunPod is read with one call to the REST API v2 (C(GET /v2/pods)); Vast.ai through the paginated
    C(GET /api/v1/instances/) (25 per page, following C(next_token)). Both providers are read in parallel.
  - Hosts are put in the groups C(gpu_nodes) (every emitted host) and C(runpod) / C(vast) (by provider), plus
    whatever C(groups) and C(keyed_groups) add.
  - Instances that are not running, or have no SSH mapping yet, are skipped or put in the group C(pending)
    without connection variables (see O(pending)); a host is never emitted with a broken C(ansible_host).
  - The configuration file name must end with C(cloud.yml) or C(cloud.yaml), for example C(sim.cloud.yml).
extends_documentation_fragment:
  - constructed
  - inventory_cache
options:
  plugin:
    description: The name of this plugin; the file is only read by this plugin when it is set.
    required: true
    type: str
    choices: [gpu.ops.cloud]
  providers:
    description:
      - The providers to list, out of V(runpod) and V(vast) (and any provider registered with the collection's
        provider registry).
      - Every known provider when not set.
    type: list
    elements: str
  runpod_api_key:
    description:
      - RunPod API key. May be a template, for example a vaulted variable.
      - Never logged; it is redacted from every error message.
    type: str
    env:
      - name: RUNPOD_API_KEY
  runpod_api_url:
    description: Base URL of the RunPod REST API v2 (the simulator's when C(gpuops-sim start) exports it).
    type: str
    default: https://api.runpod.io/v2
    env:
      - name: RUNPOD_API_URL
  vast_api_key:
    description:
      - Vast.ai API key. May be a template, for example a vaulted variable.
      - Never logged; it is redacted from every error message.
    type: str
    env:
      - name: VAST_API_KEY
  vast_api_url:
    description: Base URL of the Vast.ai API (the plugin appends C(/api/v1/instances/)).
    type: str
    default: https://console.vast.ai
    env:
      - name: VAST_API_URL
  vast_ssh_user:
    description: SSH user of Vast.ai instances (Vast does not report it; it is C(root) on Vast images).
    type: str
    default: root
    env:
      - name: VAST_SSH_USER
  api_timeout:
    description:
      - Seconds one provider listing may take, retries of HTTP 429/502/503/504 and connection errors included.
    type: float
    default: 30
  statuses:
    description:
      - Normalized statuses of the instances to list (C(pending), C(running), C(stopped), C(error)).
      - Only C(running) instances with an SSH endpoint become connectable hosts; the others follow O(pending).
    type: list
    elements: str
    default: [running]
  pending:
    description:
      - What to do with listed instances that are not running or have no SSH mapping yet.
      - C(skip) leaves them out; C(group) adds them to the group C(pending) with their facts but without
        C(ansible_host), C(ansible_port) and C(ansible_user), and outside C(gpu_nodes) and the provider groups.
    type: str
    choices: [skip, group]
    default: skip
  name_prefix:
    description: Only instances whose name (RunPod) or label name (Vast) starts with this.
    type: str
  run_id:
    description: Only instances labelled with this run id (set by the gpu.ops provider modules).
    type: str
  owner:
    description: Only instances labelled with this owner.
    type: str
  hostvars_prefix:
    description: Prefix of the normalized facts set on each host.
    type: str
    default: gpuops_
  include_raw:
    description: Also set C(<prefix>raw), the provider's normalized record as a dictionary.
    type: bool
    default: false
"""

EXAMPLES = r"""
# inventories/sim/sim.cloud.yml -- the simulator (eval "$(gpuops-sim start)" exports the URLs and keys)
plugin: gpu.ops.cloud

---
# inventories/runpod/runpod.cloud.yml -- one provider, keys from the environment, grouped by GPU and run
plugin: gpu.ops.cloud
providers: [runpod]
keyed_groups:
  - key: gpuops_gpu_model | lower | regex_replace('[^a-z0-9]+', '_')
    prefix: gpu
  - key: gpuops_run_id
    prefix: run
    default_value: none

---
# only one run's nodes, pending ones visible in group "pending", cached for AWX (5 minutes)
plugin: gpu.ops.cloud
run_id: exp-42
pending: group
strict: false
cache: true
cache_plugin: ansible.builtin.jsonfile
cache_connection: ~/.cache/gpuops-inventory
cache_timeout: 300
compose:
  ansible_python_interpreter: "'/usr/bin/python3'"
"""

import concurrent.futures
import copy
import json
import re

from ansible.errors import AnsibleParserError
from ansible.plugins.inventory import BaseInventoryPlugin, Cacheable, Constructable
from ansible.utils.display import Display

try:
    from jinja2 import Environment as _JinjaEnvironment
    from jinja2 import nodes as _jinja_nodes
except ImportError:  # ansible-core always ships jinja2; stay importable without it
    _JinjaEnvironment = None

from ansible_collections.gpu.ops.plugins.module_utils import http_client as http
from ansible_collections.gpu.ops.plugins.module_utils import registry
from ansible_collections.gpu.ops.plugins.module_utils.provider import filter_instances

display = Display()

ALL_GROUP = "gpu_nodes"
PENDING_GROUP = "pending"
_SAFE_HOST = re.compile(r"[^A-Za-z0-9._-]+")
# expressions that are not a pure function of the host's variables are never memoized
_IMPURE = re.compile(r"\b(lookup|query|q|now|random|shuffle|hostvars|vars|groups)\b")
_UNDEFINED = "\x00undefined"


class InventoryModule(BaseInventoryPlugin, Constructable, Cacheable):
    NAME = "gpu.ops.cloud"

    def verify_file(self, path):
        return super().verify_file(path) and path.endswith(("cloud.yml", "cloud.yaml"))

    # ------------------------------------------------------------------ options
    def _opt(self, name):
        value = self.get_option(name)
        if isinstance(value, str) and "{{" in value and self.templar is not None:
            value = self.templar.template(value)
        return value

    def _provider(self, name):
        # imported here so that a missing 'requests' is reported per provider with a clear message
        if not http.HAS_REQUESTS:
            raise http.ApiError("the Python library 'requests' is required on the controller "
                                "(pip install requests)", provider=name)
        timeout = float(self.get_option("api_timeout"))
        return registry.get(name).from_options(self._provider_opt, {"timeout": min(timeout, 30.0), "deadline": timeout})

    def _provider_opt(self, name):
        """A provider's option as configured here; None for one this plugin does not document (a provider added
        after this file was written: its environment variable and default apply)."""
        if not self.has_option(name):
            return None
        return self._opt(name)

    # ------------------------------------------------------------------ constructed, memoized
    # Ansible compiles a compose/keyed_groups/groups expression anew for every host (~1-2 ms each), which
    # dominates the run time at hundreds of hosts. An expression that only reads host variables gives
    # the same result for the same values of those variables, so it is evaluated once per distinct value.
    def _memo_key(self, template):
        if not isinstance(template, str) or _JinjaEnvironment is None or _IMPURE.search(template):
            return None
        names = self._template_names.get(template)
        if names is None:
            try:
                # every name the expression reads (a superset of its free variables is still a correct key)
                ast = _JinjaEnvironment().parse("{{ %s }}" % template)
                names = tuple(sorted({n.name for n in ast.find_all(_jinja_nodes.Name) if n.ctx == "load"}))
            except Exception:  # not plain Jinja: let Ansible evaluate (and report) it
                names = ()
                self._template_names[template] = False
                return None
            self._template_names[template] = names
        if names is False:
            return None
        return names

    def _memo(self, kind, template, variables, evaluate):
        names = self._memo_key(template)
        if names is None:
            return evaluate()
        try:
            key = (kind, template, tuple(json.dumps(variables[n], sort_keys=True) if n in variables else _UNDEFINED
                                         for n in names))
        except (TypeError, ValueError):
            return evaluate()
        if key not in self._memo_results:
            self._memo_results[key] = evaluate()
        value = self._memo_results[key]
        return copy.deepcopy(value) if isinstance(value, (dict, list)) else value

    def _compose(self, template, variables, disable_lookups=...):
        if self.get_option("use_extra_vars"):
            return super()._compose(template, variables)
        return self._memo("compose", template, variables, lambda: super(InventoryModule, self)._compose(
            template, variables))

    def _add_host_to_composed_groups(self, groups, variables, host, strict=False, fetch_hostvars=True):
        if not groups or not isinstance(groups, dict):
            return
        if fetch_hostvars:
            variables = dict(variables, **self.inventory.get_host(host).get_vars())

        def evaluate(conditional):
            self.templar.available_variables = variables
            return bool(self.templar.evaluate_conditional(conditional))

        for group_name, conditional in groups.items():
            try:
                result = self._memo("groups", conditional, variables, lambda c=conditional: evaluate(c))
            except Exception as e:
                if strict:
                    raise AnsibleParserError("Could not add host %s to group %s: %s" % (host, group_name, e)) from e
                continue
            if result:
                self.inventory.add_child(self.inventory.add_group(self._sanitize_group_name(group_name)), host)

    # ------------------------------------------------------------------ fetching
    def _fetch_one(self, name):
        return [i.to_dict() for i in self._provider(name).list()]

    def _fetch(self, path):
        """{provider: [instance dicts]} for every provider that answered; errors per provider."""
        providers = self._provider_names()
        unknown = [p for p in providers if registry.find(p) is None]
        if unknown:
            raise AnsibleParserError("gpu.ops.cloud inventory %s: unknown provider(s) %s; known: %s" % (
                path, ", ".join(unknown), ", ".join(registry.names())))
        results, errors = {}, {}
        with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, len(providers))) as pool:
            futures = {pool.submit(self._fetch_one, p): p for p in providers}
            for fut in concurrent.futures.as_completed(futures):
                p = futures[fut]
                try:
                    results[p] = fut.result()
                except http.ApiError as e:
                    errors[p] = str(e)
                except Exception as e:  # a plugin must not die with a traceback
                    errors[p] = "%s: %s" % (type(e).__name__, e)
        if errors:
            detail = "; ".join("%s: %s" % (p, errors[p]) for p in providers if p in errors)
            if not results and all("API key" in e and e.startswith("no ") for e in errors.values()):
                detail += ' (for the local simulator: eval "$(gpuops-sim start)" exports the URLs and keys)'
            msg = "gpu.ops.cloud inventory %s: %s" % (path, detail)
            if self.get_option("strict") or not results:
                raise AnsibleParserError(msg)
            display.warning(msg + " (listing the other providers' instances only, as strict is false)")
        return {p: results[p] for p in providers if p in results}

    # ------------------------------------------------------------------ parse
    def parse(self, inventory, loader, path, cache=True):
        super().parse(inventory, loader, path, cache)
        self._read_config_data(path)
        cache_key = self.get_cache_key(path)
        use_cache = bool(self.get_option("cache")) and cache
        data = None
        if use_cache:
            try:
                # one compact JSON string: decoding a large tagged structure through the cache plugin is slow
                data = json.loads(self._cache[cache_key])
            except (KeyError, TypeError, ValueError):
                data = None
        if data is None:
            data = self._fetch(path)
            if self.get_option("cache"):
                self._cache[cache_key] = json.dumps(data, separators=(",", ":"))
        self._template_names, self._memo_results = {}, {}
        self._populate(data)

    def _provider_names(self):
        return list(dict.fromkeys(self.get_option("providers") or registry.names()))

    def _selected(self, data):
        statuses = set(self.get_option("statuses") or [])
        for provider in data:
            for inst in filter_instances([_Row(r) for r in data[provider]], name_prefix=self.get_option("name_prefix"),
                                         run_id=self.get_option("run_id"), owner=self.get_option("owner"),
                                         statuses=statuses or None):
                yield inst.row

    def _populate(self, data):
        prefix = self.get_option("hostvars_prefix")
        strict = self.get_option("strict")
        pending_mode = self.get_option("pending")
        include_raw = self.get_option("include_raw")
        rows = sorted(self._selected(data), key=lambda r: (r["provider"], str(r.get("name") or ""), str(r["id"])))
        names = {}
        for r in rows:
            names[r.get("name") or ""] = names.get(r.get("name") or "", 0) + 1
        self.inventory.add_group(ALL_GROUP)
        for g in registry.names():  # every provider's group exists, listed or not
            self.inventory.add_group(g)
        if pending_mode == "group":
            self.inventory.add_group(PENDING_GROUP)
        for r in rows:
            connectable = r["status"] == "running" and r.get("ssh_host") and r.get("ssh_port")
            if not connectable and pending_mode == "skip":
                continue
            host = _hostname(r, unique=names.get(r.get("name") or "", 0) == 1)
            self.inventory.add_host(host)
            if connectable:
                self.inventory.add_child(ALL_GROUP, host)
                self.inventory.add_child(r["provider"], host)
                self.inventory.set_variable(host, "ansible_host", r["ssh_host"])
                self.inventory.set_variable(host, "ansible_port", int(r["ssh_port"]))
                if r.get("ssh_user"):
                    self.inventory.set_variable(host, "ansible_user", r["ssh_user"])
            else:
                self.inventory.add_child(PENDING_GROUP, host)
            facts = _facts(r, connectable)
            if include_raw:
                facts["raw"] = dict(r)
            for k, v in facts.items():
                self.inventory.set_variable(host, prefix + k, v)
            hostvars = self.inventory.get_host(host).get_vars()
            self._set_composite_vars(self.get_option("compose"), hostvars, host, strict=strict)
            hostvars = self.inventory.get_host(host).get_vars()  # with the composed variables
            self._add_host_to_composed_groups(self.get_option("groups"), hostvars, host, strict=strict,
                                              fetch_hostvars=False)
            self._add_host_to_keyed_groups(self.get_option("keyed_groups"), hostvars, host, strict=strict,
                                           fetch_hostvars=False)


class _Row:
    """Adapter so provider.filter_instances works on cached dicts."""

    __slots__ = ("row", "name", "id", "labels", "status")

    def __init__(self, row):
        self.row = row
        self.name = row.get("name")
        self.id = row.get("id")
        self.labels = row.get("labels") or {}
        self.status = row.get("status")


def _hostname(r, unique):
    name = _SAFE_HOST.sub("-", str(r.get("name") or "")).strip("-.")
    if name and unique:
        return name
    return "%s-%s" % (name or r["provider"], r["id"])


def _facts(r, connectable):
    labels = r.get("labels") or {}
    return {
        "provider": r["provider"], "id": str(r["id"]), "name": r.get("name"), "status": r["status"],
        "provider_status": r.get("provider_status"), "gpu_type": r.get("gpu_type"), "gpu_model": r.get("gpu_model"),
        "gpu_count": r.get("gpu_count"), "price_per_hour": r.get("price_per_hour"),
        "interruptible": bool(r.get("interruptible")), "labels": dict(labels), "run_id": labels.get("run_id"),
        "owner": labels.get("owner"), "expires_at": labels.get("expires_at"), "region": r.get("region"),
        "image": r.get("image"), "created_at": r.get("created_at"), "pending": not connectable,
    }
