# -*- coding: utf-8 -*-
# Copyright: (c) 2026, gpu.ops maintainers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0), or at your option
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Artifacts (models, datasets) for gpu.ops: manifest validation, a content-addressed cache, verified downloads.

PRIVATE to the collection. Used by the stage_artifacts action plugin on the controller (manifest
validation, before any node is touched) and by the stage_artifacts module on the node (stdlib plus
ansible.module_utils only; Python >= 3.9).

Cache layout under the cache root (default ``~/.bifrost/cache``)::

    sha256/<hex>          the content, read-only (0444), named by its hash
    meta/<hex>.json       stamp written when the content was last hashed: size, mtime_ns, inode
    .partial/             downloads and uploads in progress; never read as content
    .lock                 one writer at a time per node

A file becomes ``sha256/<hex>`` only by ``os.replace`` after its hash matched, so an interrupted
download (connection lost, process killed, disk full) never counts as done.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import posixpath
import re
import shutil
import time

try:
    import fcntl
except ImportError:  # pragma: no cover - not on POSIX
    fcntl = None

from urllib.parse import unquote, urlsplit

CHUNK = 1 << 20
SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
ENTRY_KEYS = ("name", "src", "sha256", "dest", "size", "remote_src")
REQUIRED_KEYS = ("name", "src", "sha256")
URL_SCHEMES = ("http", "https")
TRUE = ("1", "true", "yes", "on", "y", "t")
FALSE = ("0", "false", "no", "off", "n", "f", "")


class ArtifactError(Exception):
    """A failure that ends one artifact; ``transient`` ones are worth another try."""

    def __init__(self, msg, transient=False):
        super(ArtifactError, self).__init__(msg)
        self.msg = msg
        self.transient = transient


# ---------------------------------------------------------------------------------------------- manifest
def is_url(src):
    return isinstance(src, str) and src.split("://", 1)[0].lower() in URL_SCHEMES and "://" in src


def _bool(value):
    if isinstance(value, bool):
        return value
    s = str(value).strip().lower()
    if s in TRUE:
        return True
    if s in FALSE:
        return False
    raise ValueError(value)


def default_dest(src):
    """The file name at the end of a URL path or a file path."""
    if is_url(src):
        path = unquote(urlsplit(src).path)
    else:
        path = src
    return posixpath.basename(path.rstrip("/")) if path and not path.endswith("/") else ""


def normalize_sha256(value):
    s = str(value).strip().lower()
    if s.startswith("sha256:"):
        s = s[len("sha256:"):]
    return s


def validate_manifest(manifest):  # noqa: C901 - one flat list of independent field checks, read top to bottom
    """Check every entry; return ``(entries, errors)``. Entries are normalized copies:

    ``{"name", "src", "sha256" (lower-case hex), "dest" (relative or absolute, normalized), "size" (int or None),
    "remote_src" (bool), "kind" ("url" or "path")}``. All problems are reported at once, by entry number and name.
    """
    if manifest is None:
        return [], []
    if not isinstance(manifest, (list, tuple)):
        return [], ["the manifest must be a list of artifacts, got %s" % type(manifest).__name__]
    entries, errors = [], []
    names, dests = {}, {}
    for i, raw in enumerate(manifest, 1):
        where = "entry %d" % i
        if not isinstance(raw, dict):
            errors.append("%s: expected a mapping with %s, got %s" % (where, ", ".join(REQUIRED_KEYS),
                                                                      type(raw).__name__))
            continue
        if isinstance(raw.get("name"), str) and raw["name"]:
            where = "entry %d (%s)" % (i, raw["name"])
        errs = []
        unknown = sorted(str(k) for k in raw if k not in ENTRY_KEYS)
        if unknown:
            errs.append("unknown key(s) %s (known: %s)" % (", ".join(unknown), ", ".join(ENTRY_KEYS)))
        missing = [k for k in REQUIRED_KEYS if raw.get(k) in (None, "")]
        if missing:
            errs.append("missing required field(s) %s" % ", ".join(missing))
        name, src = raw.get("name"), raw.get("src")
        entry = {"name": name, "src": src, "sha256": None, "dest": None, "size": None, "remote_src": False}
        if name not in (None, ""):
            if not isinstance(name, str) or not NAME_RE.match(name):
                errs.append("name %r must be 1-128 letters, digits, '.', '_' or '-', starting with a letter or digit"
                            % (name,))
            elif name in names:
                errs.append("duplicate name %r (also entry %d)" % (name, names[name]))
            else:
                names[name] = i
        if raw.get("sha256") not in (None, ""):
            sha = normalize_sha256(raw["sha256"])
            if not SHA256_RE.match(sha):
                errs.append("sha256 %r is not 64 hex digits" % (raw["sha256"],))
            entry["sha256"] = sha
        if src not in (None, ""):
            if not isinstance(src, str):
                errs.append("src must be a string, got %s" % type(src).__name__)
            elif "://" in src and not is_url(src):
                errs.append("src %r: unsupported scheme %r (use http://, https:// or a file path)"
                            % (src, src.split("://", 1)[0]))
            elif is_url(src) and not urlsplit(src).netloc:
                errs.append("src %r: URL without a host" % src)
        entry["kind"] = "url" if is_url(src) else "path"
        try:
            entry["remote_src"] = _bool(raw.get("remote_src", False))
        except ValueError:
            errs.append("remote_src %r is not a boolean" % (raw.get("remote_src"),))
        if entry["remote_src"] and entry["kind"] == "url":
            errs.append("remote_src applies to file paths, not URLs")
        if entry["kind"] == "path" and entry["remote_src"] and isinstance(src, str) and src and not src.startswith("/"):
            errs.append("src %r: with remote_src the path on the node must be absolute" % src)
        if raw.get("size") not in (None, ""):
            try:
                size = int(raw["size"])
                if size < 0 or isinstance(raw["size"], bool):
                    raise ValueError
                entry["size"] = size
            except (TypeError, ValueError):
                errs.append("size %r is not a number of bytes" % (raw["size"],))
        dest = raw.get("dest")
        if dest in (None, "") and isinstance(src, str) and src:
            dest = default_dest(src)
            if not dest:
                errs.append("dest is needed: src %r does not end in a file name" % src)
        if dest not in (None, ""):
            if not isinstance(dest, str):
                errs.append("dest must be a string, got %s" % type(dest).__name__)
            else:
                norm = posixpath.normpath(dest)
                if dest.endswith("/") or norm in (".", "/"):
                    errs.append("dest %r must name a file, not a directory" % dest)
                elif not norm.startswith("/") and (norm == ".." or norm.startswith("../")):
                    errs.append("dest %r leaves the link directory" % dest)
                elif norm in dests:
                    errs.append("dest %r is also used by entry %d" % (dest, dests[norm]))
                else:
                    dests[norm] = i
                entry["dest"] = norm
        errors.extend("%s: %s" % (where, e) for e in errs)
        entries.append(entry)
    return entries, errors


# ---------------------------------------------------------------------------------------------- hashing
def sha256_file(path):
    """(hex digest, size) of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    size = 0
    with open(path, "rb") as fh:
        while True:
            chunk = fh.read(CHUNK)
            if not chunk:
                break
            h.update(chunk)
            size += len(chunk)
    return h.hexdigest(), size


def short(sha):
    return sha[:12] if sha else sha


# ---------------------------------------------------------------------------------------------- cache
class Cache(object):
    def __init__(self, root):
        self.root = root
        self.objects = os.path.join(root, "sha256")
        self.meta = os.path.join(root, "meta")
        self.partial = os.path.join(root, ".partial")
        self._lock_fh = None

    def path(self, sha):
        return os.path.join(self.objects, sha)

    def stamp_path(self, sha):
        return os.path.join(self.meta, sha + ".json")

    def ensure(self):
        for d in (self.root, self.objects, self.meta, self.partial):
            if not os.path.isdir(d):
                os.makedirs(d, 0o755)

    # -- lock: one writer per node; waits with backoff until the deadline
    def lock(self, timeout):
        if fcntl is None:
            return
        self._lock_fh = open(os.path.join(self.root, ".lock"), "a")
        deadline = time.monotonic() + timeout
        delay = 0.05
        while True:
            try:
                fcntl.flock(self._lock_fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except (IOError, OSError) as e:
                if e.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
                if time.monotonic() >= deadline:
                    self._lock_fh.close()
                    self._lock_fh = None
                    raise ArtifactError("another run holds the artifact cache lock %s; gave up after %d s"
                                        % (os.path.join(self.root, ".lock"), timeout)) from e
            time.sleep(delay)
            delay = min(delay * 2, 2.0)

    def unlock(self):
        if self._lock_fh is not None:
            self._lock_fh.close()
            self._lock_fh = None

    # -- state of one object
    def read_stamp(self, sha):
        try:
            with open(self.stamp_path(sha)) as fh:
                return json.load(fh)
        except (OSError, IOError, ValueError):
            return None

    def write_stamp(self, sha, st):
        stamp = {"sha256": sha, "size": st.st_size, "mtime_ns": st.st_mtime_ns, "ino": st.st_ino,
                 "verified_at": round(time.time(), 3)}
        tmp = "%s.tmp.%d" % (self.stamp_path(sha), os.getpid())
        with open(tmp, "w") as fh:
            json.dump(stamp, fh)
        os.replace(tmp, self.stamp_path(sha))

    def check(self, sha, rehash=False, record=True):
        """``("missing"|"verified"|"corrupt", actual_sha, size, hashed)`` for the cached object ``sha``.

        Without ``rehash`` a stamp that matches the file's size, mtime and inode stands for a hash made
        earlier; anything else (no stamp, file rewritten, touched, replaced) is hashed again.
        """
        p = self.path(sha)
        try:
            st = os.stat(p)
        except OSError:
            return "missing", None, None, False
        stamp = self.read_stamp(sha)
        if not rehash and stamp and stamp.get("sha256") == sha and stamp.get("size") == st.st_size and \
                stamp.get("mtime_ns") == st.st_mtime_ns and stamp.get("ino") == st.st_ino:
            return "verified", sha, st.st_size, False
        actual, size = sha256_file(p)
        if actual == sha:
            if record:
                self.write_stamp(sha, os.stat(p))
            return "verified", sha, size, True
        return "corrupt", actual, size, True

    def discard(self, sha):
        for p in (self.path(sha), self.stamp_path(sha)):
            try:
                os.unlink(p)
            except OSError as e:
                if e.errno != errno.ENOENT:
                    raise

    def new_partial(self, sha):
        return os.path.join(self.partial, "%s.%d.%s.part" % (sha, os.getpid(), os.urandom(4).hex()))

    def clean_partials(self, sha):
        """Leftovers of earlier, interrupted runs for this object (the lock is held, so none is live)."""
        removed = 0
        try:
            names = os.listdir(self.partial)
        except OSError:
            return 0
        for n in names:
            if n.startswith(sha + "."):
                try:
                    os.unlink(os.path.join(self.partial, n))
                    removed += 1
                except OSError:
                    pass
        return removed

    def commit(self, partial_path, sha):
        """Make a verified temp file the cached object: read-only, fsynced, renamed in one step."""
        os.chmod(partial_path, 0o444)
        os.replace(partial_path, self.path(sha))
        _fsync_dir(self.objects)
        self.write_stamp(sha, os.stat(self.path(sha)))


def _fsync_dir(path):
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def free_bytes(path):
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def human(n):
    if n is None:
        return "?"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return ("%d %s" % (n, unit)) if unit == "B" else ("%.1f %s" % (n, unit))
        n /= 1024.0
    return str(n)  # pragma: no cover


# ---------------------------------------------------------------------------------------------- download
TRANSIENT_HTTP = frozenset((408, 425, 429, 500, 502, 503, 504))


def stream_to(resp, path, expected_length=None):
    """Copy a response body to a new file, hashing as it goes; fsync. Returns (sha256, bytes).

    http.client does not raise when a connection closes before Content-Length bytes arrived, so
    the length is checked here: a short body is an interrupted download, never a finished one.
    """
    h = hashlib.sha256()
    n = 0
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        while True:
            chunk = resp.read(CHUNK)
            if not chunk:
                break
            fh.write(chunk)
            h.update(chunk)
            n += len(chunk)
        fh.flush()
        os.fsync(fh.fileno())
    if expected_length is not None and n != expected_length:
        raise ArtifactError("download interrupted: received %d of %d bytes" % (n, expected_length), transient=True)
    return h.hexdigest(), n


def content_length(resp):
    headers = getattr(resp, "headers", None) or {}
    try:
        value = headers.get("Content-Length")
    except AttributeError:  # pragma: no cover
        value = None
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def backoff_delays(retries, base=1.0, cap=30.0):
    """Delays before retry 1..retries: 1, 2, 4 ... seconds, capped."""
    return [min(cap, base * (2 ** i)) for i in range(retries)]


def ensure_link(dest, target, link_type="symlink", force=False, check_mode=False):
    """Make ``dest`` point at ``target`` (symlink) or be the same inode (hardlink).

    Returns ``"ok"``, ``"created"`` or ``"updated"``. An existing regular file or directory at ``dest`` is
    replaced only with ``force`` (a directory never). The swap is atomic: a temp link renamed over ``dest``.
    """
    try:
        st = os.lstat(dest)
    except OSError:
        st = None
    if st is not None:
        if link_type == "symlink" and os.path.islink(dest) and os.readlink(dest) == target:
            return "ok"
        if link_type == "hardlink" and not os.path.islink(dest):
            try:
                if os.path.samefile(dest, target):
                    return "ok"
            except OSError:
                pass
        if os.path.isdir(dest) and not os.path.islink(dest):
            raise ArtifactError("%s is a directory; remove it or choose another dest" % dest)
        if not os.path.islink(dest) and not force:
            raise ArtifactError("%s exists and is not a link to the cache; set force to replace it" % dest)
    if check_mode:
        return "updated" if st is not None else "created"
    parent = os.path.dirname(dest)
    if parent and not os.path.isdir(parent):
        os.makedirs(parent, 0o755)
    tmp = "%s.gpuops-tmp.%d" % (dest, os.getpid())
    try:
        os.unlink(tmp)
    except OSError:
        pass
    if link_type == "hardlink":
        try:
            os.link(target, tmp)
        except OSError as e:
            raise ArtifactError("cannot hard-link %s to %s: %s (a hard link needs the cache and the link directory "
                                "on one filesystem; use link_type symlink)" % (dest, target, e.strerror)) from e
    else:
        os.symlink(target, tmp)
    os.replace(tmp, dest)
    return "updated" if st is not None else "created"


def copy_to(src, path):
    """Copy a node-local source into a new temp file (never over an existing one)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out, open(src, "rb") as inp:
        shutil.copyfileobj(inp, out, CHUNK)
        out.flush()
        os.fsync(out.fileno())
