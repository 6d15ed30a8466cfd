"""Stand-ins for a simulated container's package managers, sudo, sshd, service and id.

Run by the node's shims (``sim/images.py``) as ``python -I image_tool.py NAME ARGS...``, with
``GPUOPS_SIM_NODE_DIR`` naming the node. Installing a package links the host's program into the node's own
``bin`` (first on its PATH); nothing on the host is changed. Messages and exit codes are the real tools'.
Only the standard library: this runs beside the node's processes, not in the simulator.
"""

import json
import os
import subprocess
import sys
import time

CLIENT = ["openssh-client"]
SERVER = ["openssh-server", "openssh-client"]
NOOP = []
PACKAGES = {
    "apt": {"openssh-server": SERVER, "ssh": SERVER, "openssh-client": CLIENT, "git": ["git"], "tmux": ["tmux"],
            "rsync": ["rsync"], "curl": ["curl"], "wget": ["wget"], "python3": ["python3"],
            "python3-minimal": ["python3"], "python3-pip": ["python3"], "python3-venv": ["python3"],
            "python-is-python3": ["python3"], "sudo": ["sudo"]},
    "dnf": {"openssh-server": SERVER, "openssh-clients": CLIENT, "git": ["git"], "git-core": ["git"],
            "tmux": ["tmux"], "rsync": ["rsync"], "curl": ["curl"], "wget": ["wget"], "python3": ["python3"],
            "python3-pip": ["python3"], "sudo": ["sudo"]},
    "apk": {"openssh": SERVER, "openssh-server": SERVER, "openssh-client": CLIENT, "git": ["git"],
            "tmux": ["tmux"], "rsync": ["rsync"], "curl": ["curl"], "wget": ["wget"], "python3": ["python3"],
            "py3-pip": ["python3"], "sudo": ["sudo"]},
}
for _pm in PACKAGES.values():
    for _name in ("tar", "ca-certificates", "procps", "procps-ng", "less", "nano", "vim", "gnupg", "bash",
                  "coreutils", "findutils", "which", "lsb-release", "build-essential", "git-lfs", "locales",
                  "tzdata", "unzip", "zip", "gzip", "iproute2"):
        _pm.setdefault(_name, NOOP)
NOT_ROOT = {
    "apt": ("E: Could not open lock file /var/lib/dpkg/lock-frontend - open (13: Permission denied)\n"
            "E: Unable to acquire the dpkg frontend lock (/var/lib/dpkg/lock-frontend), are you root?", 100),
    "dnf": ("Error: This command has to be run with superuser privileges (under the root user on most systems).",
            1),
    "apk": ("ERROR: Unable to lock database: Permission denied\nERROR: Failed to open apk database: "
            "Permission denied", 99),
}
MANAGER = {"apt-get": "apt", "apt": "apt", "dnf": "dnf", "yum": "dnf", "microdnf": "dnf", "apk": "apk"}


def node_info():
    node = os.environ.get("GPUOPS_SIM_NODE_DIR", "")
    with open(os.path.join(node, "image.json")) as fh:
        info = json.load(fh)
    info["node"] = node
    return info


def is_root(info):
    return info["image"]["user"] == "root" or os.environ.get("GPUOPS_SIM_SUDO") == "1"


def fail(msg, rc):
    sys.stderr.write(msg + "\n")
    return rc


def install(info, tools):
    bin_dir = info["bin"]
    for tool in tools:
        for name, path in sorted(info["programs"].get(tool, {}).items()):
            dest = os.path.join(bin_dir, name)
            if os.path.lexists(dest):
                continue
            if name in ("sshd", "sudo", "ssh-keygen"):  # the stand-ins, never the host's own
                with open(dest, "w") as fh:
                    fh.write("#!/bin/sh\nexec '%s' -I '%s' '%s' \"$@\"\n" % (sys.executable, __file__, name))
                os.chmod(dest, 0o755)
            else:
                os.symlink(path, dest)


def package_manager(info, name, args):
    pm = MANAGER[name]
    words = [a for a in args if not a.startswith("-")]
    sub = words[0] if words else ""
    if sub in ("", "clean", "autoremove", "autoclean", "makecache", "upgrade", "cache"):
        return 0
    if not is_root(info):
        return fail(*NOT_ROOT[pm])
    lists = os.path.join(info["node"], "package-lists")
    if sub == "update":
        time.sleep(info["install_seconds"] / 2)
        open(lists, "w").close()
        print("Reading package lists... Done" if pm == "apt" else "OK")
        return 0
    if sub not in ("install", "add"):
        return fail("%s: unknown command %s" % (name, sub), 1 if pm != "apt" else 100)
    wanted = words[1:]
    if pm == "apt" and not os.path.exists(lists):  # images ship no package lists: apt-get update first
        return fail("E: Unable to locate package %s" % wanted[0], 100) if wanted else 0
    unknown = [p for p in wanted if p not in PACKAGES[pm]]
    if unknown:
        if pm == "apt":
            return fail("E: Unable to locate package %s" % unknown[0], 100)
        if pm == "dnf":
            return fail("Error: Unable to find a match: %s" % " ".join(unknown), 1)
        return fail("ERROR: unable to select packages:\n  %s (no such package)" % unknown[0], 1)
    time.sleep(info["install_seconds"])
    install(info, [t for p in wanted for t in PACKAGES[pm][p]])
    for p in wanted:
        print("Setting up %s ..." % p)
    return 0


def sshd(info, args):
    real, cfg = info["sshd"], info["sshd_config"]
    if "-t" in args:
        os.execv(real, [real, "-t", "-f", cfg])
    if "-D" in args:
        os.execv(real, [real, "-D", "-e", "-f", cfg])
    # daemon mode: sshd forks into the background and this returns, as `/usr/sbin/sshd` does
    os.execv(real, [real, "-f", cfg, "-E", info["sshd_log"]])


def service(info, args):
    if len(args) < 2:
        return fail("Usage: service < option > | --status-all | [ service_name [ command | --full-restart ] ]", 1)
    name, action = args[0], args[1]
    have_sshd = any(os.path.exists(os.path.join(d, "sshd")) for d in os.environ.get("PATH", "").split(":") if d)
    if name not in ("ssh", "sshd") or not have_sshd:
        return fail("%s: unrecognized service" % name, 1)
    if action in ("start", "restart", "reload", "force-reload"):
        if not is_root(info):
            return fail("sshd: no hostkeys available -- exiting.", 1)
        rc = subprocess.call(["sshd"])
        if rc == 0:
            print("Starting OpenBSD Secure Shell server: sshd.")
        return rc
    return 0


def sudo(info, args):
    rest = list(args)
    while rest and rest[0].startswith("-"):
        opt = rest.pop(0)
        if opt == "--":
            break
        if opt in ("-u", "-g", "-C", "-p") and rest:
            rest.pop(0)
    if not rest:
        return fail("usage: sudo -h | -K | -k | -V\nusage: sudo [-nHE] [-u user] command", 1)
    os.environ["GPUOPS_SIM_SUDO"] = "1"
    try:
        os.execvp(rest[0], rest)
    except OSError:
        return fail("sudo: %s: command not found" % rest[0], 1)


def ident(info, args):
    root = is_root(info)
    user = "root" if root else info["image"]["user"]
    uid = "0" if root else "1000"
    flags = "".join(a.lstrip("-") for a in args if a.startswith("-"))
    if "u" in flags or "g" in flags:
        print(user if "n" in flags else uid)
    else:
        print("uid=%s(%s) gid=%s(%s) groups=%s(%s)" % (uid, user, uid, user, uid, user))
    return 0


def keygen(info, args):
    if "-A" in args:  # host keys: the node's own already exist (sim/nodes.py); never the host's /etc/ssh
        return 0
    real = info["programs"]["openssh-client"]["ssh-keygen"]
    os.execv(real, [real] + list(args))


def main(argv):
    name, args = argv[1], argv[2:]
    info = node_info()
    if name in MANAGER:
        return package_manager(info, name, args)
    handler = {"sshd": sshd, "service": service, "sudo": sudo, "id": ident, "ssh-keygen": keygen}[name]
    return handler(info, args)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
