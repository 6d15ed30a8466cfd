# -*- coding: utf-8 -*-
# Copyright: (c) 2026, gpu.ops maintainers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0), or at your option
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin for gpu.ops.stage_artifacts (documentation: plugins/modules/stage_artifacts.py).

On the controller: validate the whole manifest and find the controller-side files before any node is
contacted. Then one call of the ``artifacts`` node helper (``_artifacts_node.py``) in check mode (the plan: what is cached and verified, what is
missing, which links need making). When everything is in place that is the only round trip. Otherwise
upload the controller files the node lacks (each hashed here first, so a wrong local file is refused
before it is sent) and make one more call that fetches, verifies, commits and links.
"""

from __future__ import annotations

import os
import time

from ansible.errors import AnsibleError
from ansible.plugins.action import ActionBase
from ansible.utils.display import Display

from ansible_collections.gpu.ops.plugins.module_utils.artifacts import human, sha256_file, validate_manifest
from ansible_collections.gpu.ops.plugins.plugin_utils._node_helper import HelperActionMixin

display = Display()

# paths stay strings here: "~" must expand on the node, not on the controller
ARGUMENT_SPEC = {
    "manifest": {"type": "list", "elements": "dict", "required": True},
    "cache_dir": {"type": "str", "default": "~/.bifrost/cache"},
    "link_dir": {"type": "str", "default": "~/.bifrost/workspace"},
    "link_type": {"type": "str", "choices": ["symlink", "hardlink"], "default": "symlink"},
    "verify": {"type": "str", "choices": ["changed", "always"], "default": "changed"},
    "force": {"type": "bool", "default": False},
    "timeout": {"type": "int", "default": 60},
    "retries": {"type": "int", "default": 3},
    "validate_certs": {"type": "bool", "default": True},
    "lock_timeout": {"type": "int", "default": 600},
}

# controller-side hashes, per worker process: (path, size, mtime_ns, inode) -> sha256
_HASHES = {}


def local_sha256(path):
    st = os.stat(path)
    key = (os.path.realpath(path), st.st_size, st.st_mtime_ns, st.st_ino)
    if key not in _HASHES:
        _HASHES[key] = sha256_file(path)[0]
    return _HASHES[key], st.st_size


class ActionModule(HelperActionMixin, ActionBase):
    TRANSFERS_FILES = False  # True would make a remote tmp dir before run(), i.e. before the manifest is validated
    _requires_connection = True
    _supports_check_mode = True

    def run(self, tmp=None, task_vars=None):
        result = super(ActionModule, self).run(tmp, task_vars)
        del tmp
        if "uploads" in self._task.args:
            return dict(result, failed=True, msg="uploads is set by the action plugin, not in the task")
        dummy, args = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC)
        host = (task_vars or {}).get("inventory_hostname", "node")

        entries, errors = validate_manifest(args["manifest"])
        if errors:
            return dict(result, failed=True, errors=errors,
                        msg="artifacts manifest is invalid (%d problem(s)): %s" % (len(errors), "; ".join(errors)))
        local, missing = {}, []
        for e in entries:
            if e["kind"] == "path" and not e["remote_src"]:
                try:
                    local[e["name"]] = self._find_needle("files", e["src"])
                except AnsibleError:
                    missing.append("%s (artifact %r)" % (e["src"], e["name"]))
        if missing:
            return dict(result, failed=True, msg="controller file(s) not found: %s" % ", ".join(missing))

        plan = self._call(args, task_vars, check=True)
        if plan.get("failed") or self._task.check_mode:
            return dict(result, **plan)
        # nothing to fetch, upload or link, and no file had to be hashed (whose stamp the apply would record)
        if not plan.get("changed") and not any(a.get("hashed") for a in plan.get("artifacts", [])):
            return dict(result, **plan)

        todo = [a for a in plan["artifacts"] if a.get("cache") == "missing"]
        tmpdir = None
        uploads = {}
        started = time.monotonic()
        try:
            if plan.get("needs_upload"):
                tmpdir = self._make_tmp_path()
                by_name = dict((e["name"], e) for e in entries)
                for name in plan["needs_upload"]:
                    path, e = local[name], by_name[name]
                    actual, size = local_sha256(path)
                    if actual != e["sha256"]:
                        return dict(result, failed=True, artifacts=plan["artifacts"],
                                    msg="artifact %r: controller file %s has sha256 %s, the manifest says %s"
                                        % (name, path, actual, e["sha256"]))
                    remote = self._connection._shell.join_path(tmpdir, "%s.upload" % e["sha256"])
                    display.display("stage_artifacts: %s: uploading %s (%s)" % (host, name, human(size)), stderr=True)
                    self._transfer_file(path, remote)
                    uploads[name] = remote
                self._fixup_perms2([tmpdir] + list(uploads.values()))
            fetch = [a["name"] for a in todo if a["name"] not in uploads]
            if fetch:
                sizes = [a.get("size") for a in todo if a["name"] in fetch]
                total = human(sum(sizes)) if all(s is not None for s in sizes) else "size unknown"
                display.display("stage_artifacts: %s: fetching %d artifact(s) (%s): %s"
                                % (host, len(fetch), total, ", ".join(fetch)), stderr=True)
            final = self._call(dict(args, uploads=uploads), task_vars, check=False)
        finally:
            if tmpdir:
                self._remove_tmp_path(tmpdir)
        if todo and not final.get("failed"):
            display.display("stage_artifacts: %s: staged %d artifact(s) in %.1f s"
                            % (host, len(todo), time.monotonic() - started), stderr=True)
        return dict(result, **final)

    def _call(self, args, task_vars, check):
        """One call of the artifacts node helper (the plan with ``check``, else the staging itself)."""
        return self._node_call("artifacts", "stage", args, task_vars, check=check)
