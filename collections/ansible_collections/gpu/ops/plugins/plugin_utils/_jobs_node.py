# -*- coding: utf-8 -*-
# Copyright (c) 2026 gpu.ops contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0), or at your option
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Node side of gpu.ops.job, job_bootstrap, job_info and job_wait. PRIVATE to the collection, may change.

The ``__main__`` of the ``jobs`` helper (a zip application with ``_jobs`` and ``_job_runner``, see
``_node_helper``), installed once per version as ``~/.bifrost/bin/gpuops-jobs-<hash>.pyz``. Standard library only,
Python >= 3.9. Commands (arguments as one JSON line on stdin, the answer as one JSON line on stdout):

  start      gpu.ops.job state=started      kill    gpu.ops.job state=killed
  bootstrap  gpu.ops.job_bootstrap          info    gpu.ops.job_info
  wait       gpu.ops.job_wait (one round: waits at most ``timeout`` seconds on the node)
  follow     stream the job's log from ``offset`` until it ends (``{"line": ..., "offset": n}`` lines, then the
             answer); gpuops exec, logs -f
  run        (bootstrap when the dependencies changed,) start, then follow: one round trip for gpuops exec
  runner     ``runner run|bootstrap JOB_DIR``: the process in a job's tmux session (no stdin protocol)

Each job keeps running from the helper file that started it; a newer collection installs a new file next to it.
"""

from __future__ import annotations

import json
import os
import sys
import time

from ansible_collections.gpu.ops.plugins.module_utils import _job_runner as runner
from ansible_collections.gpu.ops.plugins.module_utils._jobs import (
    JobError,
    Paths,
    follow_bootstrap,
    follow_job,
    kill_job,
    list_jobs,
    read_job,
    start_bootstrap,
    start_job,
    wait_job,
)
from ansible_collections.gpu.ops.plugins.module_utils._node_protocol import NodeError, serve


# How this helper starts a runner: [python, this helper file, "runner"] once main() knows the file it runs from.
RUNNER_ARGV = []


def _paths(args):
    return Paths(args.get("root"), runner_argv=RUNNER_ARGV or None)


def start(args):
    if args["bootstrap_timeout"] <= 0 or args["kill_grace"] < 0:
        raise NodeError("bootstrap_timeout must be > 0 and kill_grace >= 0")
    changed, job = start_job(_paths(args), args["job_id"], args["command"], args["workdir"], args.get("env") or {},
                             bootstrap=args["bootstrap"], bootstrap_timeout=args["bootstrap_timeout"],
                             kill_grace=args["kill_grace"], shell=args["shell"], name=args.get("name"),
                             metadata=args.get("metadata") or {}, check_mode=args.get("check_mode", False))
    msg = ("job %s started in tmux session %s" % (args["job_id"], job["session"]) if changed
           else "job %s already exists (%s)" % (args["job_id"], job["status"]))
    return {"changed": changed, "job": job, "msg": msg}


def kill(args):
    changed, job = kill_job(_paths(args), args["job_id"], grace=args.get("kill_grace", 10),
                            check_mode=args.get("check_mode", False))
    msg = ("job %s killed (%s)" % (args["job_id"], job["status"]) if changed
           else "job %s is not running (%s)" % (args["job_id"], job["status"]))
    return {"changed": changed, "job": job, "msg": msg}


def bootstrap(args):
    if args["timeout"] <= 0:
        raise NodeError("timeout must be > 0")
    changed, result = start_bootstrap(
        _paths(args), args["job_id"], args["workdir"], command=args.get("command") or None, timeout=args["timeout"],
        force=args["force"], env=args.get("env") or {}, python=args["python"], venv=args["venv"],
        system_site_packages=args["system_site_packages"], hash_files=args["hash_files"],
        kill_grace=args["kill_grace"], shell=args["shell"], check_mode=args.get("check_mode", False))
    result.setdefault("msg", "bootstrap of %s: %s" % (args["job_id"], result["outcome"]))
    return dict(result, changed=changed)


def info(args):
    paths = _paths(args)
    persist = not args.get("check_mode", False)  # a job found lost is recorded as lost on the node
    log_lines = max(0, args.get("log_lines", 20))
    if args.get("job_id"):
        job_dir = paths.job_dir(args["job_id"])
        if not os.path.isdir(job_dir):
            raise NodeError("no job %s on this node (%s)" % (args["job_id"], job_dir))
        return {"changed": False, "job": read_job(job_dir, None, log_lines, persist=persist)}
    return {"changed": False, "jobs": list_jobs(paths, log_lines, args.get("name"), persist=persist)}


def wait(args):
    res = wait_job(_paths(args), args["job_id"], args.get("state", "finished"), max(0, args.get("timeout", 30)),
                   args.get("ready_url"),
                   tuple(args.get("ready_status") or (200,)), args.get("ready_match"),
                   max(0, args.get("log_lines", 20)), persist=not args.get("check_mode", False))
    return dict(res, changed=False, msg="job %s: %s" % (args["job_id"], res["job"]["status"]))


def _emit(line, offset):
    sys.stdout.write(json.dumps({"line": line, "offset": offset}) + "\n")
    sys.stdout.flush()


def follow(args):
    res = follow_job(_paths(args), args["job_id"], _emit, offset=max(0, int(args.get("offset") or 0)),
                     timeout=float(args.get("timeout") or 0))
    return dict(res, changed=False, msg="job %s: %s" % (args["job_id"], res["job"]["status"]))


def _bootstrap_first(args):
    """run's optional bootstrap (``bootstrap_args``: as for ``bootstrap``): skipped in milliseconds when the
    dependency files did not change; when it runs, its log streams as ``{"bootstrap_line": ...}`` until it ends
    (the job's runner waits for it anyway, and ends bootstrap_failed when it fails). None: carry on; else the
    failure to answer."""
    t0 = time.monotonic()
    res = bootstrap(args["bootstrap_args"])
    _say({"bootstrap": {k: res.get(k) for k in ("outcome", "state", "msg", "failed")},
          "seconds": round(time.monotonic() - t0, 3)})
    if res.get("failed"):
        return res
    if res.get("outcome") == "started":
        job_dir = _paths(args).job_dir(args["job_id"])
        follow_bootstrap(job_dir, args["job_id"], lambda line: _say({"bootstrap_line": line}))
    return None


def _say(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def run(args):
    if args.get("bootstrap_args"):
        failed = _bootstrap_first(args)
        if failed:
            return failed
    started = start(args)
    sys.stdout.write(json.dumps({"started": started["job"], "changed": started["changed"]}) + "\n")
    sys.stdout.flush()
    if args.get("check_mode") or args.get("detach"):
        return started
    return dict(follow(args), started=started["job"])


COMMANDS = {"start": start, "kill": kill, "bootstrap": bootstrap, "info": info, "wait": wait, "follow": follow,
            "run": run}


def main(argv=None):
    if argv is None:
        argv = sys.argv[1:]
        RUNNER_ARGV[:] = [sys.executable, os.path.abspath(sys.argv[0]), "runner"]
    if argv and argv[0] == "runner":
        return runner.main(argv[1:])
    return serve(COMMANDS, argv, errors=(NodeError, JobError))


if __name__ == "__main__":
    sys.exit(main())
