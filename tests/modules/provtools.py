"""Shared helpers of the provider-module suites (imported by name: conftest modules are not importable)."""

from __future__ import annotations

import ast

import yaml

from gpuops.testing import REPO

MODULES_DIR = REPO / "collections" / "ansible_collections" / "gpu" / "ops" / "plugins" / "modules"


def is_create(method, path):
    return (method, path.rstrip("/")) == ("POST", "/v2/pods") or (method == "PUT" and path.startswith("/api/v0/asks/"))


class PlayResult:
    def __init__(self, proc, doc):
        self.rc = proc.returncode
        self.proc = proc
        self.doc = doc
        self.tasks = {}
        for play in doc.get("plays", []):
            for task in play.get("tasks", []):
                for host, res in task.get("hosts", {}).items():
                    self.tasks.setdefault(task["task"]["name"], {})[host] = res

    def __getitem__(self, name):
        hosts = self.tasks[name]
        return hosts.get("localhost") or next(iter(hosts.values()))

    def durations(self):
        return [(t["task"]["name"], t["task"].get("duration_s")) for p in self.doc.get("plays", []) for t in p["tasks"]]

    def __repr__(self):
        return "PlayResult(rc=%s, tasks=%s)\nstderr: %s" % (self.rc, list(self.tasks), self.proc.stderr[-2000:])


def live(sim, prefix):
    """Live simulator instances whose name/label starts with ``prefix``."""
    return [i for i in sim.client.status() if (i["name"] or "").startswith(prefix)]


def ledger_rows(sim, prefix):
    return [r for r in sim.client.ledger()["instances"] if (r["name"] or "").startswith(prefix)]


def example_task(module: str, action: str) -> dict:
    """The first task of ``module``'s EXAMPLES that runs ``action``, as documented (so a test runs the docs)."""
    tree = ast.parse((MODULES_DIR / f"{module}.py").read_text())
    text = next(node.value.value for node in tree.body if isinstance(node, ast.Assign)
                and any(getattr(t, "id", None) == "EXAMPLES" for t in node.targets))
    return next(task for task in yaml.safe_load(text) if action in task)
