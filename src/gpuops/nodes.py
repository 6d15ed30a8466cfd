"""A run's nodes as the controller reaches them over plain ssh: cloud instances, home-lab and ``--ssh`` hosts alike.

Every ssh here shares a ControlMaster (``~/.ansible/cp/%C``, the directory and naming the project's ansible.cfg
uses, so a node the playbooks just talked to is already warm) and persists it for ten minutes: in the edit-run
loop each command after the first costs round trips over an open connection, not new SSH handshakes. Host keys are
the run's own ``known_hosts`` (trust on first use), as for the playbooks.
"""

from __future__ import annotations

import os
import shlex
from dataclasses import dataclass
from pathlib import Path

CONTROL_DIR = Path(os.environ.get("GPUOPS_SSH_CONTROL_DIR") or "~/.ansible/cp").expanduser()
CONTROL_PERSIST = "600"


@dataclass
class Node:
    name: str
    host: str
    port: int
    user: str | None
    key: str | None
    common_args: str | None
    kind: str = "cloud"
    provider: str | None = None
    id: str | None = None
    gpu_count: int | None = None


def node_from(n: dict) -> Node:
    """A record's node entry (an instance, or a home-lab/ssh host) as a Node."""
    return Node(name=str(n.get("name") or n["ssh_host"]), host=str(n["ssh_host"]), port=int(n.get("ssh_port") or 22),
                user=n.get("ssh_user"), key=n.get("ssh_private_key_file"), common_args=n.get("ssh_common_args"),
                kind=n.get("kind") or "cloud", provider=n.get("provider"),
                id=str(n["id"]) if n.get("id") is not None else None, gpu_count=n.get("gpu_count"))


def nodes_of(record: dict) -> list[Node]:
    """The run's live nodes in rank order: cloud instances not destroyed, then home-lab/ssh hosts of a run that
    is not torn down (the lifecycle module's rule, also in ``gpuops.runs.live_nodes``)."""
    from .runs import live_nodes

    return [node_from(n) for n in live_nodes(record) if n.get("ssh_host")]


def pick(record: dict, host: str | None) -> list[Node]:
    """All live nodes, or the one named ``host`` (name, instance id or address)."""
    nodes = nodes_of(record)
    if host:
        nodes = [n for n in nodes if host in (n.name, n.id, n.host)]
    return nodes


def _key_of(record: dict, node: Node, key: str | None) -> str | None:
    spec = record.get("spec") or record.get("inputs") or {}
    spec = spec if isinstance(spec, dict) else {}
    found = key or node.key or record.get("ssh_private_key_file") or spec.get("ssh_private_key_file") or \
        os.environ.get("GPUOPS_SSH_KEY")
    return str(Path(found).expanduser()) if found else None


def ssh_argv(record: dict, node: Node, key: str | None = None, control: bool = True, tty: bool = False) -> list[str]:
    """``ssh`` and its options for ``node`` (the destination comes from :func:`destination`)."""
    known = str(Path(record["run_dir"]) / "known_hosts")
    argv = ["ssh", "-p", str(node.port)] + (["-t"] if tty else [])
    common = shlex.split(node.common_args) if node.common_args else []
    argv += common
    if not any("UserKnownHostsFile" in a for a in common):
        argv += ["-o", "StrictHostKeyChecking=accept-new", "-o", f"UserKnownHostsFile={known}"]
    argv += ["-o", "BatchMode=yes", "-o", "ConnectTimeout=10", "-o", "ServerAliveInterval=5",
             "-o", "ServerAliveCountMax=3", "-o", "LogLevel=ERROR"]
    if control:
        CONTROL_DIR.mkdir(mode=0o700, parents=True, exist_ok=True)
        argv += ["-o", "ControlMaster=auto", "-o", f"ControlPath={CONTROL_DIR}/%C",
                 "-o", f"ControlPersist={CONTROL_PERSIST}"]
    path = _key_of(record, node, key)
    if path:
        argv += ["-i", path, "-o", "IdentitiesOnly=yes"]
    return argv


def destination(node: Node) -> str:
    return f"{node.user}@{node.host}" if node.user else node.host


def transport(record: dict, node: Node, key: str | None = None):
    """The collection's SshTransport for ``node``: node helpers, deploy and collect over this ssh."""
    from ._collection import module

    nh = module("plugin_utils._node_helper")
    return nh.SshTransport(ssh_argv(record, node, key), destination(node), python="python3")


def helper(record: dict, node: Node, name: str, key: str | None = None):
    from ._collection import module

    nh = module("plugin_utils._node_helper")
    return nh.NodeHelper(transport(record, node, key), name)
