"""Print, as JSON, the argument specs the installed awx.awx modules really build (not only their docs).

Run as `python awx_argspec.py MODULE...` with PYTHONPATH holding the directory that contains
ansible_collections/awx/awx. Each module's main() is run up to the point where it constructs its AnsibleModule;
that constructor is replaced by one that records the spec and its cross-field rules and stops the module, so no
controller is contacted. Also prints each module's documented options (for nested dict options that the code
types only as `dict`, such as workflow_nodes).
"""

from __future__ import annotations

import importlib
import json
import sys

import yaml
from ansible.module_utils import basic


class _Captured(Exception):
    pass


def _capture(self, argument_spec, **kwargs):
    raise _Captured({"argument_spec": argument_spec, **kwargs})


def _plain(spec: dict) -> dict:
    """Drop what JSON cannot carry (env fallbacks hold functions); recurse into suboptions."""
    out = {}
    for name, opt in spec.items():
        opt = {k: v for k, v in opt.items() if k != "fallback"}
        if isinstance(opt.get("options"), dict):
            opt["options"] = _plain(opt["options"])
        out[name] = opt
    return out


def main(modules: list[str]) -> None:
    basic.AnsibleModule.__init__ = _capture
    result = {}
    for name in modules:
        mod = importlib.import_module(f"ansible_collections.awx.awx.plugins.modules.{name}")
        try:
            mod.main()
        except _Captured as c:
            captured = c.args[0]
        else:
            raise SystemExit(f"awx.awx.{name}: main() returned without building an AnsibleModule")
        captured["argument_spec"] = _plain(captured["argument_spec"])
        captured["doc_options"] = yaml.safe_load(mod.DOCUMENTATION).get("options", {})
        captured["file"] = mod.__file__
        result[name] = captured
    json.dump(result, sys.stdout, default=str)


if __name__ == "__main__":
    main(sys.argv[1:])
