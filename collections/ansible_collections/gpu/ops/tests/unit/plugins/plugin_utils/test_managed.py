# -*- coding: utf-8 -*-
# Copyright: gpu.ops contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0), or at your option
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which synced checkpoint a managed run restarts from: complete (COMPLETE marker) and verified only."""

from __future__ import annotations

import json
import os

from ansible_collections.gpu.ops.plugins.plugin_utils import _managed, _run


def _write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as fh:
        fh.write(text)


def _sync(run_dir, host, steps, verified_only=None, complete=None):
    """Lay out what collect_results leaves: steps/step-N/{model.json,COMPLETE} and collect.json."""
    sync = _managed.host_sync_dir(run_dir, host)
    files = {}
    for step in steps:
        d = os.path.join(sync, "steps", "step-%08d" % step)
        _write(os.path.join(d, "model.json"), json.dumps({"step": step}))
        if complete is None or step in complete:
            _write(os.path.join(d, "COMPLETE"), "%d\n" % step)
        for name in os.listdir(d):
            full = os.path.join(d, name)
            if verified_only is not None and step not in verified_only:
                continue
            st = os.stat(full)
            files[os.path.relpath(full, sync)] = {"sha256": "x", "size": st.st_size, "mtime_ns": st.st_mtime_ns}
    _write(os.path.join(sync, "collect.json"), json.dumps({"files": files}))
    return sync


def test_a_directory_without_its_marker_is_never_used(tmp_path):
    run_dir = str(tmp_path)
    _sync(run_dir, "n-0", [100, 200], complete=[100])  # step 200 is being written: no COMPLETE yet
    assert _managed.select_checkpoint(run_dir, ["n-0"])["step"] == 100


def test_an_unverified_or_changed_file_disqualifies_the_checkpoint(tmp_path):
    run_dir = str(tmp_path)
    sync = _sync(run_dir, "n-0", [100, 200, 300], verified_only=[100, 200])
    assert set(_managed.usable_checkpoints(sync)) == {100, 200}
    # a file that changed after it was verified (a sync caught it mid-write) does not count
    _write(os.path.join(sync, "steps", "step-00000200", "model.json"), "half a checkpoint, longer than before")
    assert _managed.select_checkpoint(run_dir, ["n-0"]) == {
        "step": 100, "sources": {"n-0": os.path.join(sync, "steps", "step-00000100")}}


def test_every_rank_restarts_from_the_newest_step_they_all_have(tmp_path):
    run_dir = str(tmp_path)
    _sync(run_dir, "n-0", [100, 200, 300])
    _sync(run_dir, "n-1", [100, 200])
    chosen = _managed.select_checkpoint(run_dir, ["n-0", "n-1"])
    assert chosen["step"] == 200
    assert chosen["sources"]["n-1"].endswith(os.path.join("n-1", "steps", "step-00000200"))


def test_no_checkpoint_means_scratch(tmp_path):
    assert _managed.select_checkpoint(str(tmp_path), ["n-0"]) == {"step": 0, "sources": {}}


def test_metrics_of_a_restarted_job_make_one_series(tmp_path):
    run_dir = str(tmp_path)
    first = "".join(json.dumps({"step": s, "loss": 5.0 - s / 100}) + "\n" for s in range(1, 131))
    again = "".join(json.dumps({"step": s, "loss": 1.0}) + "\n" for s in range(101, 201))
    _write(os.path.join(run_dir, "n-0", "outputs", "metrics.jsonl"), first)
    _write(os.path.join(run_dir, "n-0", "restart-01", "outputs", "metrics.jsonl"), again)
    merged = _run.merge_metrics(run_dir, ["n-0"])
    assert [m["step"] for m in merged] == list(range(1, 201))
    assert all(m["loss"] == 1.0 for m in merged if m["step"] > 100)  # the restarted job's records win


def test_summary_has_a_line_per_recovery():
    lines = _managed.recovery_lines([{"n": 1, "kind": "preemption", "hosts": ["n-1"], "detected_at": "T",
                                      "replaced": {"n-1": {"old": "7", "new": "9"}}, "checkpoint_step": 300,
                                      "time_lost_s": 41.5}])
    assert lines == ["  recovery 1: n-1 preempted at T; replaced n-1 7 -> 9; restarted from checkpoint step 300, "
                     "41.5s lost"]
