"""``gpuops.api``: the same Python API as ``gpuops.runner`` (both names are used in the docs), plus the dev loop
of ``gpuops.devloop`` (``exec_job``, ``sync``, ``stop``, ``refresh``) on a run that ``up`` keeps."""

from __future__ import annotations

from .devloop import ExecResult, NodeResult, RunRefused, SyncResult, exec_job, refresh, stop, sync
from .runner import (BadInput, LogLine, RunResult, cost, down, load_spec, logs, offers, prepare_spec, reap,
                     run_pipeline, run_playbook, ssh_argv, status, up)

__all__ = ["BadInput", "LogLine", "RunResult", "cost", "down", "load_spec", "logs", "offers", "prepare_spec", "reap",
           "run_pipeline", "run_playbook", "ssh_argv", "status", "up", "exec_job", "sync", "stop", "refresh",
           "ExecResult", "NodeResult", "SyncResult", "RunRefused"]
