"""Node preparation (issue 19): `gpu.ops.node_tools` on each test image, the first time and cached, and its share
of a 1-node pipeline.

For each image a RunPod node is made the way gpu.ops makes it (RunPod's templates as they are, every other image
with gpu.ops' start command), then a one-task playbook runs `gpu.ops.node_tools` on it ROUNDS+1 times: the first
run installs what the image lacks, the rest find the marker. A playbook with one `raw: true` task on the same node
is the baseline (ansible-playbook's start and one round trip); the figures are medians minus that baseline.
Then one 1-node pipeline per image reports `prepare` against the run's wall time. The simulator's package installs
take `package_install_seconds` (0.1 s, the default catalog's), so "first" is dominated by that figure, not by
real mirrors; compare images with each other within one run. A benchmark, not a test: nothing here asserts.

    python benchmarks/bench_prepare.py [ROUNDS]
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import yaml
from _common import simulator, stats, table, write_result

from gpuops.demo import example_repo
from gpuops.testing import REPO, ansible_env

sys.path.insert(0, str(REPO / "collections"))
from ansible_collections.gpu.ops.plugins.module_utils.runpod import start_args  # noqa: E402

ROUNDS = int(sys.argv[1]) if len(sys.argv) > 1 else 5
IMAGES = {
    "runpod-template": "runpod/pytorch:2.4.0-py3.11-cuda12.4.1-devel-ubuntu22.04",
    "pytorch-runtime": "pytorch/pytorch:2.4.0-cuda12.4-cudnn9-runtime",
    "cuda-runtime": "nvidia/cuda:12.4.1-runtime-ubuntu22.04",
}
PLAYBOOK_BIN = str(Path(sys.executable).parent / "ansible-playbook")


def play(work: Path, name: str, task: dict) -> Path:
    p = work / f"{name}.yml"
    p.write_text(yaml.safe_dump([{"hosts": "gpu_nodes", "gather_facts": False, "tasks": [task]}]))
    return p


def timed(h, playbook: Path, inventory: Path) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run([PLAYBOOK_BIN, str(playbook), "-i", str(inventory)], capture_output=True, text=True,
                          env=ansible_env(h.env), cwd=str(REPO), timeout=300)
    took = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{playbook.name} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-1000:]}")
    return took


def node_for(h, image: str):
    args = start_args({"image": image})
    return h.create_runpod(f"prep-{uuid.uuid4().hex[:6]}", image=image, **({"args": args} if args else {}))


def pipeline_share(h, repo: Path, work: Path, image: str) -> dict:
    run_id = f"prep-{uuid.uuid4().hex[:6]}"
    spec = {"run_id": run_id, "repo": str(repo), "gpu": ["RTX 4090"], "providers": ["runpod"], "image": image,
            "max_price_per_hour": 2.0, "bootstrap": "true", "command": "python3 train.py --steps 100",
            "ssh_private_key_file": str(h.key), "runs_dir": str(work / "runs")}
    spec_file = work / f"{run_id}.yml"
    spec_file.write_text(yaml.safe_dump(spec))
    inv = work / "local.yml"
    inv.write_text(yaml.safe_dump({"all": {"hosts": {"localhost": {
        "ansible_connection": "local", "ansible_python_interpreter": sys.executable}}}}))
    t0 = time.perf_counter()
    proc = subprocess.run([PLAYBOOK_BIN, "gpu.ops.pipeline", "-e", f"@{spec_file}", "-i", str(inv)],
                          capture_output=True, text=True, env=ansible_env(h.env), cwd=str(REPO), timeout=600)
    wall = time.perf_counter() - t0
    path = work / "runs" / run_id / "run.json"
    record = json.loads(path.read_text()) if path.exists() else {}
    if proc.returncode != 0:
        raise SystemExit(f"pipeline on {image} failed: {record.get('message')}\n{proc.stdout[-3000:]}\n"
                         f"{proc.stderr[-1000:]}")
    prepare = float(record["steps"].get("prepare", 0.0))
    return {"wall_s": round(wall, 2), "prepare_s": prepare, "share": round(prepare / wall, 3),
            "installed": next(iter(record.get("node_tools", {}).values()), {}).get("installed")}


def main() -> int:
    work = Path(tempfile.mkdtemp(prefix="bench-prepare-"))
    repo = example_repo(work)
    tools_play = play(work, "tools", {"gpu.ops.node_tools": {}})
    base_play = play(work, "base", {"ansible.builtin.raw": "true"})
    rows, results = [], {}
    with simulator() as h:
        for label, image in IMAGES.items():
            node = node_for(h, image)
            inv = h.inventory([node], work / f"{label}.yml")
            base = [timed(h, base_play, inv) for _ in range(ROUNDS)]
            first = timed(h, tools_play, inv)
            cached = [timed(h, tools_play, inv) for _ in range(ROUNDS)]
            h.destroy(node)
            share = pipeline_share(h, repo, work, image)
            b = stats(base)["median"]
            results[label] = {"image": image, "baseline": stats(base), "first_s": round(first - b, 3),
                              "cached": stats(cached), "cached_s": round(stats(cached)["median"] - b, 3),
                              "pipeline": share}
            rows.append([label, round(first - b, 3), round(stats(cached)["median"] - b, 3),
                         share["prepare_s"], share["wall_s"], f"{100 * share['share']:.1f} %",
                         ",".join(share["installed"] or []) or "-"])
    print(table(["image", "first s", "cached s", "pipeline prepare s", "pipeline wall s", "share", "installed"],
                rows))
    write_result("prepare", {"rounds": ROUNDS, "images": IMAGES, "results": results})
    return 0


if __name__ == "__main__":
    sys.exit(main())
