#!/usr/bin/env python3
"""A tiny but real training job: a character-level bigram language model, trained with SGD, stdlib only.

The template for your own job under gpu.ops:
- metrics: one JSON object per step, {"step", "loss", "lr", "elapsed_s"}, appended to
  $GPUOPS_OUTPUTS/metrics.jsonl (the pipeline merges every node's file into runs/<run_id>/metrics.jsonl and
  plots loss.png from it). A line "step N loss L" goes to stdout too: the progress lines show it.
- checkpoints: $GPUOPS_CHECKPOINT_DIR/step-<N>/ holding model.json and, written last, the marker COMPLETE.
  A directory without COMPLETE is a checkpoint being written (or cut short) and is never used.
- resume: at start the job loads the newest complete checkpoint and goes on from its step, so a restarted job
  (a preempted node replaced, a job restarted by hand) continues the same series of steps.
Runs anywhere Python 3.8+ runs (no numpy, no GPU) in a few seconds; --step-seconds makes each step slower to
stand in for real work.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import shutil
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=400, help="train until this step")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=2.0)
    ap.add_argument("--checkpoint-every", type=int, default=100)
    ap.add_argument("--keep-checkpoints", type=int, default=2)
    ap.add_argument("--step-seconds", type=float, default=0.0, help="extra time per step (stands in for compute)")
    ap.add_argument("--data", default=os.path.join(HERE, "data", "corpus.txt"))
    ap.add_argument("--seed", type=int, default=int(os.environ.get("NODE_RANK", "0") or 0))
    ap.add_argument("--fail-at", type=int, default=0, help="exit 1 at this step (to try failure handling)")
    return ap.parse_args(argv)


def outputs_dir():
    out = os.environ.get("GPUOPS_OUTPUTS") or os.environ.get("BIFROST_OUTPUTS") or os.path.join(HERE, "outputs")
    os.makedirs(out, exist_ok=True)
    return out


def checkpoint_root(out):
    root = os.environ.get("GPUOPS_CHECKPOINT_DIR") or os.path.join(out, "checkpoints")
    os.makedirs(root, exist_ok=True)
    return root


class Bigram:
    """logits[a][b]: the score of character b following character a; softmax per row."""

    def __init__(self, vocab):
        self.vocab = vocab
        self.index = {c: i for i, c in enumerate(vocab)}
        self.w = [[0.0] * len(vocab) for _ in vocab]

    def probs(self, a):
        row = self.w[a]
        top = max(row)
        exps = [math.exp(x - top) for x in row]
        total = sum(exps)
        return [e / total for e in exps]

    def step(self, pairs, lr):
        """One SGD step on a batch of (a, b) pairs; returns the batch's mean cross-entropy."""
        grads = {}
        loss = 0.0
        for a, b in pairs:
            p = self.probs(a)
            loss -= math.log(max(p[b], 1e-12))
            g = grads.setdefault(a, [0.0] * len(self.vocab))
            for j, pj in enumerate(p):
                g[j] += pj
            g[b] -= 1.0
        for a, g in grads.items():
            row = self.w[a]
            for j, gj in enumerate(g):
                row[j] -= lr * gj / len(pairs)
        return loss / len(pairs)

    def state(self):
        return {"vocab": self.vocab, "w": self.w}

    @classmethod
    def load(cls, state):
        m = cls(state["vocab"])
        m.w = state["w"]
        return m


def latest_checkpoint(root):
    """(step, path) of the newest directory with the COMPLETE marker, or (0, None)."""
    best = (0, None)
    for name in os.listdir(root):
        path = os.path.join(root, name)
        if name.startswith("step-") and os.path.isfile(os.path.join(path, "COMPLETE")):
            try:
                step = int(name[5:])
            except ValueError:
                continue
            if step > best[0]:
                best = (step, path)
    return best


def save_checkpoint(root, step, model, keep):
    """Write into a temporary directory, mark it COMPLETE, then rename: a reader never sees half a checkpoint."""
    final = os.path.join(root, "step-%08d" % step)
    tmp = final + ".tmp-%d" % os.getpid()
    os.makedirs(tmp, exist_ok=True)
    with open(os.path.join(tmp, "model.json"), "w") as fh:
        json.dump({"step": step, "model": model.state()}, fh)
        fh.flush()
        os.fsync(fh.fileno())
    with open(os.path.join(tmp, "COMPLETE"), "w") as fh:
        fh.write("%d\n" % step)
    os.replace(tmp, final)
    done = sorted(n for n in os.listdir(root) if n.startswith("step-") and ".tmp-" not in n)
    for old in done[:-keep]:
        shutil.rmtree(os.path.join(root, old), ignore_errors=True)


def main(argv=None):
    args = parse_args(argv)
    with open(args.data, encoding="utf-8") as fh:
        text = fh.read()
    out = outputs_dir()
    ckpt = checkpoint_root(out)
    step, path = latest_checkpoint(ckpt)
    rng = random.Random(args.seed * 1000003 + step)  # a resumed run draws new batches
    if path:
        with open(os.path.join(path, "model.json")) as fh:
            saved = json.load(fh)
        model = Bigram.load(saved["model"])
        print("resumed from %s (step %d)" % (path, step), flush=True)
    else:
        model = Bigram(sorted(set(text)))
        print("no checkpoint in %s: starting at step 0" % ckpt, flush=True)
    data = [model.index[c] for c in text if c in model.index]
    t0 = time.time()
    with open(os.path.join(out, "metrics.jsonl"), "a") as metrics:
        while step < args.steps:
            step += 1
            if args.fail_at and step == args.fail_at:
                print("failing on purpose at step %d" % step, flush=True)
                return 1
            starts = [rng.randrange(len(data) - 1) for _ in range(args.batch)]
            loss = model.step([(data[i], data[i + 1]) for i in starts], args.lr)
            if args.step_seconds:
                time.sleep(args.step_seconds)  # stands in for the compute of a real model
            rec = {"step": step, "loss": round(loss, 5), "lr": args.lr, "elapsed_s": round(time.time() - t0, 3)}
            metrics.write(json.dumps(rec) + "\n")
            metrics.flush()
            if step % 20 == 0 or step == args.steps:
                print("step %d loss %.4f" % (step, loss), flush=True)
            if step % args.checkpoint_every == 0 or step == args.steps:
                save_checkpoint(ckpt, step, model, args.keep_checkpoints)
    print("done: %d steps, last loss %.4f" % (step, loss if args.steps else float("nan")), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
