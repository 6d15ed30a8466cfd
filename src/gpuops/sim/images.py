"""Container images as they are: what each one has on PATH, how big it is, what it runs, which CUDA it needs.

The catalog (``data/images.yaml``, plus a catalog's own ``images:`` entries first) says per image which tools
are there; a node's PATH is a directory of links to the host's programs *minus* every optional tool the image
lacks (python3, git, tmux, rsync, curl, wget, sshd, sudo, package managers), so a program our code expects
is really absent until something installs it. Package managers, ``sudo``, ``sshd``, ``service`` and ``id``
(for images that are not root) are the simulator's own stand-ins (``data/image_tool.py``): they install by
linking the host's program into the node's own ``bin`` and never touch the host.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
import re
import shutil
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .errors import SimConfigError

DATA = Path(__file__).parent / "data"
DEFAULT_IMAGES = DATA / "images.yaml"
IMAGE_TOOL = DATA / "image_tool.py"
HOST_DIRS = ("/usr/sbin", "/usr/bin", "/sbin", "/bin")

# optional tools, by the name the catalog uses, and the programs each brings (shell patterns)
TOOL_PROGRAMS: dict[str, tuple[str, ...]] = {
    "python3": ("python3", "python3.*", "python", "pip", "pip3", "pip3.*", "pydoc3*", "py3compile", "py3clean",
                "pygettext3*", "2to3*", "idle*"),
    "git": ("git", "git-*", "gitk", "scalar"),
    "tmux": ("tmux",),
    "rsync": ("rsync", "rsync-ssl"),
    "curl": ("curl",),
    "wget": ("wget",),
    "openssh-client": ("ssh", "scp", "sftp", "ssh-keygen", "ssh-keyscan", "ssh-add", "ssh-agent", "ssh-copy-id",
                       "ssh-argv0"),
    "openssh-server": ("sshd", "sshd-*"),
    "sudo": ("sudo", "sudoedit", "sudoreplay", "visudo"),
}
# never the host's own: package managers, init scripts and privilege tools are stand-ins or absent
NEVER_HOST = ("apt", "apt-*", "dpkg", "dpkg-*", "dnf", "yum", "microdnf", "rpm", "rpm*", "apk", "service",
              "invoke-rc.d", "systemctl", "nvidia-smi", "reboot", "shutdown", "halt", "poweroff", "init")
STAND_INS = ("sshd", "sudo", "id", "ssh-keygen")
PACKAGE_MANAGERS = {"apt": ("apt-get", "apt"), "dnf": ("dnf", "yum", "microdnf"), "apk": ("apk",), "none": ()}
KNOWN_TOOLS = set(TOOL_PROGRAMS) | {"tar"}
# a reference a registry could hold: [host[:port]/]name[/name...][:tag][@digest], lower-case names
REF_RE = re.compile(r"^(?:[a-z0-9.-]+(?::[0-9]+)?/)?[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
                    r"(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?"
                    r"(?:@sha256:[0-9a-f]{64})?$")
CUDA_TAG_RE = re.compile(r"cuda[-_]?v?(\d+)\.(\d+)", re.I)


@dataclass(frozen=True)
class Image:
    ref: str
    size_gb: float = 1.0
    entrypoint: str = "none"  # sshd | none
    tools: frozenset = field(default_factory=frozenset)
    package_manager: str = "apt"
    user: str = "root"
    cuda: str | None = None
    exists: bool = True

    @property
    def root(self) -> bool:
        return self.user == "root"

    def public(self) -> dict:
        d = asdict(self)
        d["tools"] = sorted(self.tools)
        return d


def cuda_of_tag(ref: str) -> str | None:
    """The CUDA version an image's tag names: ``...-cuda12.4-...``, ``cuda-12.4.1``, ``nvidia/cuda:12.4.1-...``."""
    m = CUDA_TAG_RE.search(ref)
    if m:
        return f"{int(m.group(1))}.{int(m.group(2))}"
    name, _, tag = ref.partition(":")
    if name.rsplit("/", 1)[-1] == "cuda":
        m = re.match(r"(\d+)\.(\d+)", tag)
        if m:
            return f"{int(m.group(1))}.{int(m.group(2))}"
    return None


def valid_reference(ref: str) -> bool:
    ref = ref.replace(":@vastai-automatic-tag", "")  # Vast resolves this tag itself (§2 of provider-apis)
    return bool(ref) and len(ref) <= 255 and bool(REF_RE.match(ref))


class ImageCatalog:
    def __init__(self, entries: list[dict]):
        self.entries = [self._check(i, e) for i, e in enumerate(entries)]

    @staticmethod
    def _check(i: int, e: Any) -> dict:
        where = f"images[{i}]"
        if not isinstance(e, dict) or not e.get("match"):
            raise SimConfigError(f"{where}: needs a 'match' pattern")
        unknown = set(e.get("tools") or []) - KNOWN_TOOLS
        if unknown:
            raise SimConfigError(f"{where}: unknown tools {sorted(unknown)} (known: {sorted(KNOWN_TOOLS)})")
        if e.get("package_manager", "apt") not in PACKAGE_MANAGERS:
            raise SimConfigError(f"{where}: package_manager must be one of {sorted(PACKAGE_MANAGERS)}")
        if e.get("entrypoint", "none") not in ("sshd", "none"):
            raise SimConfigError(f"{where}: entrypoint must be sshd or none")
        return e

    @classmethod
    def load(cls, extra: list[dict] | None = None, path: Path = DEFAULT_IMAGES) -> ImageCatalog:
        raw = yaml.safe_load(Path(path).read_text()) or {}
        return cls(list(extra or []) + list(raw.get("images") or []))

    def resolve(self, ref: str) -> Image:
        if not valid_reference(ref):
            return Image(ref=ref, exists=False)
        for e in self.entries:
            if fnmatch.fnmatchcase(ref, e["match"]):
                cuda = e.get("cuda")
                if cuda is None and e.get("cuda_from_tag"):
                    cuda = cuda_of_tag(ref)
                tools = set(e.get("tools") or [])
                if "openssh-server" in tools:  # the server package brings the client (ssh-keygen)
                    tools.add("openssh-client")
                return Image(ref=ref, size_gb=float(e.get("size_gb", 1.0)), entrypoint=e.get("entrypoint", "none"),
                             tools=frozenset(tools), package_manager=e.get("package_manager", "apt"),
                             user=str(e.get("user", "root")), cuda=str(cuda) if cuda else None,
                             exists=bool(e.get("exists", True)))
        return Image(ref=ref, size_gb=0.1, tools=frozenset({"python3", "tar"}), package_manager="apt")


def cuda_key(v: str | float | None) -> tuple[int, int]:
    a, _, b = str(v or "0").partition(".")
    try:
        return int(a), int((b or "0").split(".")[0])
    except ValueError:
        return 0, 0


# ---------------------------------------------------------------------------- the node's PATH
def host_programs() -> dict[str, str]:
    """name -> path of every program in the host's system directories (first directory wins)."""
    out: dict[str, str] = {}
    for d in HOST_DIRS:
        try:
            names = sorted(os.listdir(d))
        except OSError:
            continue
        for n in names:
            p = os.path.join(d, n)
            if n not in out and os.path.isfile(p) and os.access(p, os.X_OK):
                out[n] = p
    return out


def programs_of(tool: str, programs: dict[str, str]) -> dict[str, str]:
    pats = TOOL_PROGRAMS.get(tool, ())
    return {n: p for n, p in programs.items() if any(fnmatch.fnmatchcase(n, pat) for pat in pats)}


def _shim(path: Path, name: str) -> None:
    path.write_text(f"#!/bin/sh\nexec '{sys.executable}' -I '{IMAGE_TOOL}' '{name}' \"$@\"\n")
    os.chmod(path, 0o755)


def build_path_dir(cache: Path, image: Image) -> Path:
    """The directory of programs a container of ``image`` has on PATH (built once per image kind)."""
    key = hashlib.sha256(json.dumps([sorted(image.tools), image.package_manager, sys.executable],
                                    sort_keys=True).encode()).hexdigest()[:16]
    d = Path(cache) / key
    if (d / ".complete").exists():
        return d
    tmp = Path(cache) / f".{key}.{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    programs = host_programs()
    absent = {n for tool, _ in TOOL_PROGRAMS.items() if tool not in image.tools for n in programs_of(tool, programs)}
    for n, p in programs.items():
        if n in absent or any(fnmatch.fnmatchcase(n, pat) for pat in NEVER_HOST):
            continue
        if n in STAND_INS:  # below (id: the image's user, not the simulator's; ssh-keygen -A: not the host's)
            continue
        os.symlink(p, tmp / n)
    for name in PACKAGE_MANAGERS[image.package_manager] + ("service",):
        _shim(tmp / name, name)
    if "openssh-server" in image.tools:
        _shim(tmp / "sshd", "sshd")
    if "sudo" in image.tools:
        _shim(tmp / "sudo", "sudo")
    if "openssh-client" in image.tools:
        _shim(tmp / "ssh-keygen", "ssh-keygen")
    _shim(tmp / "id", "id")
    (tmp / ".complete").write_text("")
    try:
        os.rename(tmp, d)
    except OSError:  # another node built it meanwhile
        shutil.rmtree(tmp, ignore_errors=True)
    return d


def write_node_image(node_dir: Path, image: Image, settings: dict, sshd: str) -> None:
    """What the stand-ins on the node read: the image, the host programs they may link, sshd's config."""
    programs = host_programs()
    info = {"image": image.public(), "sshd": sshd, "sshd_config": str(node_dir / "sshd_config"),
            "sshd_log": str(node_dir / "sshd.log"), "bin": str(node_dir / "bin"),
            "install_seconds": float(settings.get("package_install_seconds", 0.1) or 0),
            "programs": {tool: programs_of(tool, programs) for tool in TOOL_PROGRAMS}}
    (node_dir / "image.json").write_text(json.dumps(info, indent=1))
