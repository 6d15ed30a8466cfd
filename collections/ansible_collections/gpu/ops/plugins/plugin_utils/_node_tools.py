# -*- coding: utf-8 -*-
# Copyright (c) 2026 gpu.ops contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0), or at your option
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Node preparation: what the steps need on a node, found or installed in one POSIX sh round trip.

PRIVATE to the collection: the API may change between releases.

It runs before anything else on a node, so it cannot use the node helpers (they need the Python it may be
installing): one ``sh`` script over the task's connection checks the tools, installs the missing ones with the
node's package manager (as root, or with ``sudo -n``), and leaves a marker with the versions it found, so the
next run on a warm node costs one quick check. Programs are found on PATH only.
"""

from __future__ import annotations

import hashlib
import json
import shlex

# what each tool is for: the message names it, so the user knows what breaks without it
NEEDED_FOR = {
    "python3": "the node helpers (Python >= 3.9)",
    "git": "deploying the repository",
    "tmux": "running jobs",
    "tar": "collecting results",
    "rsync": "faster collects (optional)",
}
DEFAULT_REQUIRE = ("python3", "git", "tmux", "tar")
DEFAULT_OPTIONAL = ("rsync",)
MARKER = "~/.bifrost/node_tools.json"
LOG = "~/.bifrost/node_tools.log"
# the same package name on apt, dnf/yum/microdnf and apk for every tool we need
PACKAGES = {"python3": "python3", "git": "git", "tmux": "tmux", "tar": "tar", "rsync": "rsync"}

SCRIPT = r"""
have() { command -v "$1" >/dev/null 2>&1; }
ok() { if [ "$1" = python3 ]; then python3 -c 'import sys; sys.exit(sys.version_info[:2] < (3, 9))' \
  >/dev/null 2>&1; else have "$1"; fi; }
missing() { m=; for t in $REQ; do ok "$t" || m="$m $t"; done; echo $m; }
ver() { case $1 in python3) v=$(python3 --version 2>&1);; tmux) v=$(tmux -V 2>&1);;
  *) v=$($1 --version 2>&1 | head -n 1);; esac
  printf '%s' "$v" | head -n 1 | sed 's/^[^0-9]*\([0-9][0-9A-Za-z.]*\).*/\1/' | tr -d '"\\'; }
versions() { first=1; printf '{'; for t in $REQ $OPT; do if ok "$t"; then [ $first = 1 ] || printf ', ';
  first=0; printf '"%s": "%s"' "$t" "$(ver "$t")"; fi; done; printf '}'; }
mkdir -p "$HOME/.bifrost"
M="$HOME/.bifrost/node_tools.json"; L="$HOME/.bifrost/node_tools.log"
if [ -f "$M" ] && grep -q "\"version\": \"$VER\"" "$M" && [ -z "$(missing)" ]; then
  echo "cached=1"; echo "marker=$(cat "$M")"; exit 0; fi
miss=$(missing); echo "missing=$miss"
pm=; for c in apt-get dnf microdnf yum apk; do if have $c; then pm=$c; break; fi; done; echo "manager=$pm"
if [ -n "$miss" ] && [ "$INSTALL" = 1 ]; then
  if [ "$(id -u)" = 0 ]; then S=; echo "privilege=root"
  elif have sudo && sudo -n true >/dev/null 2>&1; then S="sudo -n"; echo "privilege=sudo"
  else S=none; echo "privilege=none"; fi
  pk=; for t in $miss; do pk="$pk $(pkg "$t")"; done
  if [ -n "$pm" ] && [ "$S" != none ]; then
    echo "installing=$pk"
    case $pm in
      apt-get) $S env DEBIAN_FRONTEND=noninteractive apt-get update -qq >"$L" 2>&1 &&
        $S env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $pk >>"$L" 2>&1;;
      apk) $S apk add --no-cache -q $pk >"$L" 2>&1;;
      *) $S $pm install -y $pk >"$L" 2>&1;;
    esac
    echo "install_rc=$?"; echo "install_log=$(tail -n 5 "$L" | tr '\n' '|')"
  fi
fi
miss=$(missing); echo "still_missing=$miss"
if [ -z "$miss" ]; then
  printf '{"version": "%s", "tools": %s, "manager": "%s"}\n' "$VER" "$(versions)" "$pm" > "$M"
  echo "marker=$(cat "$M")"; fi
"""


def script(require, optional, install):
    """The sh command line: the variables, a package-name function, then SCRIPT."""
    pkg_cases = " ".join("%s) echo %s;;" % (t, PACKAGES.get(t, t)) for t in sorted(set(require) | set(optional)))
    head = "REQ=%s; OPT=%s; INSTALL=%d; VER=%s\npkg() { case $1 in %s *) echo \"$1\";; esac; }\n" % (
        shlex.quote(" ".join(require)), shlex.quote(" ".join(optional)), 1 if install else 0,
        version(require, optional), pkg_cases)
    return "sh -c %s" % shlex.quote(head + SCRIPT)


def version(require, optional):
    """The marker's version: a changed script or a changed list of tools checks again."""
    return hashlib.sha256(json.dumps([SCRIPT, list(require), list(optional)]).encode()).hexdigest()[:12]


def parse(stdout):
    """``key=value`` lines of the script -> dict (the marker parsed as JSON)."""
    out = {}
    for line in stdout.splitlines():
        key, sep, value = line.partition("=")
        if sep and key.isidentifier():
            out[key] = value.strip()
    if "marker" in out:
        try:
            out["marker"] = json.loads(out["marker"])
        except ValueError:
            out["marker"] = {}
    return out


def outcome(found, require, install):
    """The task result from the script's answer: changed, tools (versions), installed, or failed with a msg."""
    marker = found.get("marker") if isinstance(found.get("marker"), dict) else {}
    missing = found.get("missing", "").split()
    still = found.get("still_missing", "").split() if "still_missing" in found else ([] if marker else missing)
    res = {"changed": False, "cached": found.get("cached") == "1", "tools": marker.get("tools") or {},
           "manager": found.get("manager") or marker.get("manager") or None,
           "installed": [t for t in missing if t not in still], "missing": still}
    if res["installed"]:
        res["changed"] = True
    if still:
        res["failed"] = True
        res["msg"] = failure_message(still, found, install)
    return res


def failure_message(still, found, install):
    need = "; ".join("%s for %s" % (t, NEEDED_FOR.get(t, "the run")) for t in still)
    pkgs = " ".join(PACKAGES.get(t, t) for t in still)
    fix = ("add `RUN apt-get update && apt-get install -y %s` (or your distribution's equivalent) to the image, "
           "or use an image that has them (runpod/pytorch:*, vastai/base-image)" % pkgs)
    if not install:
        return "the node lacks %s (needs %s); install them on the node (sudo apt-get install -y %s)" % (
            ", ".join(still), need, pkgs)
    if not found.get("manager"):
        why = "the image has no package manager (apt-get, dnf, microdnf, yum or apk)"
    elif found.get("privilege") == "none":
        why = "the node's user is not root and sudo -n does not work"
    else:
        why = "installing them with %s failed (rc %s): %s" % (
            found.get("manager"), found.get("install_rc", "?"), found.get("install_log", "").strip("|") or "no output")
    return "the node lacks %s (needs %s) and cannot install them: %s. Fix the image: %s" % (
        ", ".join(still), need, why, fix)
