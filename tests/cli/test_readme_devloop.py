"""The README's dev loop runs as written against the simulator (bash, from the top of the repository)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from gpuops.testing import REPO


def devloop_snippet() -> str:
    section = (REPO / "README.md").read_text().split("## The dev loop", 1)[1]
    return re.search(r"```bash\n(.*?)```", section, re.S).group(1)


def test_the_readme_dev_loop_runs_as_written(sim, sim_env, tmp_path):
    script = devloop_snippet()
    assert "gpuops up run.yml" in script and "gpuops exec charlm-dev" in script and "gpuops down" in script
    # a user's machine: ~/.ssh/id_ed25519 (the spec's default key); a short HOME keeps ssh's ControlPath short
    home = Path(tempfile.mkdtemp(prefix="h", dir="/tmp"))
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "id_ed25519").write_bytes(sim.key.read_bytes())
    (home / ".ssh" / "id_ed25519").chmod(0o600)
    (home / ".ssh" / "id_ed25519.pub").write_text(sim.pubkey + "\n")
    tmpdir = tmp_path / "t"
    tmpdir.mkdir()
    env = dict(os.environ, **sim_env, HOME=str(home), TMPDIR=str(tmpdir),
               PATH=str(Path(sys.executable).parent) + os.pathsep + os.environ["PATH"],
               GIT_AUTHOR_NAME="u", GIT_AUTHOR_EMAIL="u@gpuops.invalid", GIT_COMMITTER_NAME="u",
               GIT_COMMITTER_EMAIL="u@gpuops.invalid")
    env.pop("GPUOPS_RUNS_DIR", None)
    # bash -e: every command of the snippet must exit 0; then say where the project ended up
    proc = subprocess.run(["bash", "-e", "-c", script + '\npwd > "$HOME/where"\n'], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=900)
    try:
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        project = Path((home / "where").read_text().strip())
        rec = json.loads((project / "runs" / "charlm-dev" / "run.json").read_text())
        assert (rec["state"], rec["status"]) == ("torn_down", "ended")
        assert [j["status"] for j in rec["jobs"]] == ["succeeded"] * 3, rec["jobs"]
        assert "[charlm-dev-0] step 200" in proc.stdout and "nothing to do" not in proc.stdout
        assert sim_env["RUNPOD_API_KEY"] not in proc.stdout + proc.stderr
        led = sim.client.ledger()
        assert not [r for r in led["instances"]
                    if r["id"] in led["live_instances"] and str(r["name"]).startswith("charlm-dev-")]
    finally:
        shutil.rmtree(home, ignore_errors=True)
