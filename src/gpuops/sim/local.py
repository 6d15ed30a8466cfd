"""Local settings of a simulator run that the CLI checks before anything heavy is imported: the state
dir and the bind address. (Kept out of server.py so `gpuops-sim status` does not import the web stack.)"""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path

from .errors import SimConfigError


def default_state_dir() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return Path(base) / "gpuops-sim"


def check_state_dir(state_dir: Path) -> Path:
    state_dir = Path(state_dir).expanduser().resolve()
    try:
        state_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(state_dir, 0o700)
        probe = state_dir / f".write-test-{os.getpid()}"
        probe.write_text("x")
        probe.unlink()
    except OSError as e:
        raise SimConfigError(f"state dir {state_dir} is not writable: {e.strerror}") from None
    return state_dir


def check_host(host: str) -> str:
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        raise SimConfigError(f"--host {host}: give a loopback IP address such as 127.0.0.1") from None
    if not ip.is_loopback:
        raise SimConfigError(f"--host {host}: the simulator binds to loopback only (its nodes accept any key "
                             "you register)")
    return host
