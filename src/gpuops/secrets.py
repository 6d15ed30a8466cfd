"""Secrets for a runner invocation: which names are secret, the pipe that carries their values, and scrubbing.

See ``gpuops._exec`` for why values travel through a FIFO rather than the environment ansible-runner records.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import tempfile
from pathlib import Path

# Always secret: the provider keys the modules read from the environment. Every provider in the collection's
# registry names its key variable <SOMETHING>_API_KEY (the registry refuses others), so a new provider's key is
# masked without a change here.
API_KEY_SUFFIX = "_API_KEY"
MASK = "********"
MIN_SECRET_LEN = 4  # shorter values would mask ordinary words; the pipeline refuses them anyway


def secret_names(extravars: dict | None, extra: tuple | list = (), environ: dict | None = None) -> list[str]:
    """API key names (``*_API_KEY`` in ``environ``), the run spec's ``secret_env`` names (a list; a mapping's
    keys), and ``extra``."""
    names = sorted(n for n in (os.environ if environ is None else environ) if n.endswith(API_KEY_SUFFIX))
    spec_names = (extravars or {}).get("secret_env") or []
    if isinstance(spec_names, dict):
        spec_names = list(spec_names)
    if isinstance(spec_names, str):
        spec_names = [spec_names]
    for n in [*spec_names, *extra]:
        if isinstance(n, str) and n and n not in names:
            names.append(n)
    return names


class SecretPipe:
    """A FIFO in a private directory holding one length-prefixed JSON message.

    ``send`` opens the FIFO read-write (Linux: does not block without a reader) and writes the message into the
    pipe buffer; the launcher reads exactly that many bytes. No thread, so pexpect's fork happens in a
    single-threaded process. The bytes live only in the kernel's pipe buffer; ``close()`` drops them and removes
    the directory."""

    LIMIT = 60000  # below the 64 KiB pipe buffer, so the write never blocks

    def __init__(self):
        self.dir = Path(tempfile.mkdtemp(prefix="gpuops-secrets-"))
        os.chmod(self.dir, stat.S_IRWXU)
        self.path = self.dir / "secrets"
        os.mkfifo(self.path, stat.S_IRUSR | stat.S_IWUSR)
        self._fd: int | None = None

    def send(self, values: dict[str, str]) -> None:
        payload = json.dumps(values).encode()
        message = b"%d\n" % len(payload) + payload
        if len(message) > self.LIMIT:
            raise ValueError("secret values too large for the pipe (%d bytes)" % len(message))
        self._fd = os.open(self.path, os.O_RDWR | os.O_NONBLOCK)  # not inherited (O_CLOEXEC by default)
        os.write(self._fd, message)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        shutil.rmtree(self.dir, ignore_errors=True)


def read_secret_pipe(path: str) -> dict:
    """The launcher's side of ``SecretPipe``."""
    with open(path, "rb") as fh:
        size = int(fh.readline().strip() or 0)
        data = b""
        while len(data) < size:
            chunk = fh.read(size - len(data))
            if not chunk:
                break
            data += chunk
    return json.loads(data or b"{}")


class Masker:
    """Replaces secret values in text (and their JSON-escaped form)."""

    def __init__(self, values):
        forms = set()
        for v in values:
            if isinstance(v, str) and len(v) >= MIN_SECRET_LEN:
                forms.add(v)
                forms.add(json.dumps(v)[1:-1])
        self.forms = sorted(forms, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for f in self.forms:
            if f in text:
                text = text.replace(f, MASK)
        return text

    def scrub_tree(self, root: Path) -> int:
        """Rewrite every file under ``root`` with secret values masked; returns how many files changed."""
        if not self.forms:
            return 0
        raw_forms = [f.encode() for f in self.forms]
        changed = 0
        for dirpath, _dirs, files in os.walk(root):
            for name in files:
                path = Path(dirpath) / name
                if path.is_symlink() or not path.is_file():
                    continue
                data = path.read_bytes()
                new = data
                for f in raw_forms:
                    new = new.replace(f, MASK.encode())
                if new != data:
                    path.write_bytes(new)
                    changed += 1
        return changed
