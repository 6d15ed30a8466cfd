"""A tiny distributed job: every process all-reduces (rank + 1) and checks the sum.

Started by torchrun on every node (roles/ddp_allreduce). Uses the env torchrun gives each worker (RANK,
WORLD_SIZE, LOCAL_RANK, GROUP_RANK, MASTER_ADDR/PORT) and writes one JSON file per rank to $BIFROST_OUTPUTS.
Exit code 0 only when the reduced value is right on this rank.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import time

import torch
import torch.distributed as dist


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--backend", default="gloo")
    parser.add_argument("--size", type=int, default=4, help="elements in the tensor")
    args = parser.parse_args()

    t0 = time.monotonic()
    dist.init_process_group(backend=args.backend)
    rank, world = dist.get_rank(), dist.get_world_size()
    device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0))) if args.backend == "nccl" else "cpu"
    tensor = torch.full((args.size,), float(rank + 1), device=device)
    dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    expected = world * (world + 1) / 2
    ok = bool(torch.all(tensor == expected).item())
    dist.barrier()
    dist.destroy_process_group()

    result = {
        "rank": rank, "world_size": world, "local_rank": int(os.environ.get("LOCAL_RANK", 0)),
        "group_rank": int(os.environ.get("GROUP_RANK", -1)), "node_rank_env": os.environ.get("NODE_RANK"),
        "local_world_size": int(os.environ.get("LOCAL_WORLD_SIZE", 0)), "backend": args.backend,
        "value": float(tensor[0].item()), "expected": expected, "ok": ok, "host": socket.gethostname(),
        "seconds": round(time.monotonic() - t0, 3),
    }
    out = os.environ.get("BIFROST_OUTPUTS") or "."
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "allreduce-rank%d.json" % rank), "w") as fh:
        json.dump(result, fh)
    print("rank %d/%d: all_reduce -> %s (expected %s) %s" % (rank, world, result["value"], expected,
                                                            "ok" if ok else "WRONG"), flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
