"""``gpuops.api``: the same Python API as ``gpuops.runner`` (both names are used in the docs)."""

from __future__ import annotations

from .runner import (BadInput, LogLine, RunResult, cost, down, load_spec, logs, offers, prepare_spec, reap,
                     run_pipeline, run_playbook, ssh_argv, status)

__all__ = ["BadInput", "LogLine", "RunResult", "cost", "down", "load_spec", "logs", "offers", "prepare_spec", "reap",
           "run_pipeline", "run_playbook", "ssh_argv", "status"]
