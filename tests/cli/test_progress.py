"""The progress display: live node lines on a TTY, plain lines otherwise; secret masking of event text."""

from __future__ import annotations

import io

from gpuops.events import EventTranslator, Failure, JobProgress, JobStarted, NodeReady, StepEnded, StepStarted
from gpuops.progress import Progress
from gpuops.secrets import MASK, Masker


def _feed(p):
    p(StepStarted("provision"))
    p(NodeReady("n0", "vast", "7", "127.0.0.2", 2222, "root", "RTX 4090", 1, 0.31))
    p(StepEnded("provision", seconds=12.0))
    p(JobStarted("n0", "train-1", "bifrost-train-1", "tmux attach -t bifrost-train-1"))
    p(JobProgress("n0", "train-1", "running 1m", "30s", "step 40 loss 1.9"))
    p(Failure("n0", task="wait", play="train", msg="job train-1 failed with exit code 1\nTraceback\nValueError"))


def test_plain_lines_when_not_a_tty():
    out = io.StringIO()
    with Progress(out, tty=False) as p:
        _feed(p)
    lines = [ln.split(" ", 1)[1] for ln in out.getvalue().splitlines() if ln[:2].isdigit()]
    assert lines[0] == "▶ provision"
    assert lines[1].startswith("node n0 ready (1x RTX 4090 vast root@127.0.0.2:2222)")
    assert lines[2] == "✓ provision (12s)"
    assert lines[3] == "[n0] job train-1 started (tmux attach -t bifrost-train-1)"
    assert lines[4] == "[n0] running 1m, waited 30s | step 40 loss 1.9"
    assert lines[5] == "✗ [n0] wait failed: job train-1 failed with exit code 1"
    assert "\x1b[" not in out.getvalue()


def test_live_node_line_on_a_tty():
    out = io.StringIO()
    with Progress(out, tty=True) as p:
        _feed(p)
    text = out.getvalue()
    assert "\x1b[1F\x1b[J" in text  # the node block is redrawn in place
    last_block = text.rsplit("\x1b[J", 1)[1]
    node_line = [ln for ln in last_block.splitlines() if ln.startswith("  n0")]
    assert node_line and "running 1m" in node_line[-1] and "step 40 loss 1.9" in node_line[-1]
    assert "✗ [n0] wait failed" in text and "    Traceback" in text


def test_masker_and_translator_mask_secret_values():
    m = Masker(["s3cr3t-value", "a\"quoted\"one", "xy"])
    assert m('key=s3cr3t-value') == f"key={MASK}"
    assert m('{"k": "a\\"quoted\\"one"}') == '{"k": "' + MASK + '"}'
    assert m("xy stays: too short to mask") == "xy stays: too short to mask"
    tr = EventTranslator(mask=m)
    evs = tr.feed({"event": "runner_on_failed", "event_data": {
        "host": "localhost", "task": "t", "play": "p", "task_action": "ansible.builtin.command",
        "res": {"msg": "bad token s3cr3t-value"}}})
    assert evs[0].msg == f"bad token {MASK}"
