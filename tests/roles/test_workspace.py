"""gpu.ops.workspace on simulator nodes: first + incremental deploy, idempotence, check mode, dirty trees
(warn / ship / fail), submodules, clean, and a node whose checkout was edited.

Helper logic on local repos (snapshot determinism, bundle cache, prerequisites) is unit-tested in the
collection (tests/unit/plugins/plugin_utils/test_workspace.py); here the role runs as a user runs it.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from gpuops.testing import run_playbook, task_results

PLAYBOOK = Path(__file__).parent / "playbooks" / "workspace.yml"
DEPLOY = "Deploy the repository to the workspace (only the commits the node lacks)"
FACT = "Record the deploy's provenance for the pipeline"


@pytest.fixture(autouse=True)
def git_identity(monkeypatch):
    for k in ("AUTHOR", "COMMITTER"):
        monkeypatch.setenv(f"GIT_{k}_NAME", "Test")
        monkeypatch.setenv(f"GIT_{k}_EMAIL", "test@example.com")


def git(cwd, *args) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


def make_repo(path: Path, files: int = 12) -> Path:
    path.mkdir(parents=True)
    git(path, "init", "-q", "-b", "main")
    (path / ".gitignore").write_text("outputs/\n*.pyc\n")
    (path / "src").mkdir()
    for i in range(files):  # a few kB of text per file that does not compress away
        body = "".join(f"# {hashlib.sha256(f'{i}-{j}'.encode()).hexdigest()}\n" for j in range(40))
        (path / "src" / f"mod{i}.py").write_text(f"VALUE = {i}\n" + body)
    git(path, "add", "-A")
    git(path, "commit", "-q", "-m", "initial")
    git(path, "remote", "add", "origin", "https://deploy:s3cret@git.example.com/team/trainer.git")
    return path


def commit(repo: Path, rel: str, text: str, msg: str = "change") -> str:
    (repo / rel).parent.mkdir(parents=True, exist_ok=True)
    (repo / rel).write_text(text)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", msg)
    return git(repo, "rev-parse", "HEAD")


def results(proc, task_name: str) -> dict:
    return task_results(proc, task_name, prefix=True)


def deploy(inv, repo, check: bool = False, ok: bool = True, **extra):
    proc = run_playbook(PLAYBOOK, inv, {"workspace_src": str(repo), **extra}, json_output=True,
                        args=["--check"] if check else None)
    if ok:
        assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    return proc


def node_head(node, dest="~/.bifrost/workspace") -> str:
    return node.ssh(f"git -C {dest} rev-parse HEAD").stdout.strip()


def test_first_incremental_idempotent_check_mode_on_both_providers(make_nodes, sim, tmp_path):
    nodes = make_nodes(2, "mixed")
    inv = sim.inventory(nodes, tmp_path / "inv.yml")
    repo = make_repo(tmp_path / "repo")
    head1 = git(repo, "rev-parse", "HEAD")

    res = results(deploy(inv, repo), DEPLOY)
    assert {n.name for n in nodes} == set(res)
    for node in nodes:
        r = res[node.name]
        assert r["changed"] and r["before"] is None and r["commit"] == head1
        assert node_head(node) == head1
        assert node.ssh("cat ~/.bifrost/workspace/src/mod3.py").stdout.startswith("VALUE = 3")
        full = r["bundle_bytes"]
        assert full > 0
    json_proc = deploy(inv, repo)  # second run: nothing to send
    facts, rerun = results(json_proc, FACT), results(json_proc, DEPLOY)
    for node in nodes:
        assert rerun[node.name]["changed"] is False and rerun[node.name]["bundle_bytes"] == 0
        prov = facts[node.name]["ansible_facts"]["workspace_provenance"]
        assert prov["commit"] == head1 and prov["branch"] == "main" and prov["dirty"] is False
        assert prov["remote_url"] == "https://git.example.com/team/trainer.git"  # credentials stripped
        assert "s3cret" not in json_proc.stdout

    head2 = commit(repo, "src/mod3.py", "VALUE = 33\n" + "x = 1\n" * 50, "one line")
    checked = results(deploy(inv, repo, check=True), DEPLOY)
    for node in nodes:
        assert checked[node.name]["changed"] is True and node_head(node) == head1  # check mode sent nothing

    res = results(deploy(inv, repo), DEPLOY)
    delta = subprocess.run(["git", "bundle", "create", "-", "HEAD", f"^{head1}"], cwd=repo, capture_output=True,
                           check=True).stdout
    for node in nodes:
        r = res[node.name]
        assert r["changed"] and r["before"] == head1 and node_head(node) == head2
        # only the missing commit travelled: about the size of git's own delta bundle, far below a full one
        assert r["bundle_bytes"] <= 2 * len(delta) and r["bundle_bytes"] < full / 3
        assert node.ssh("head -1 ~/.bifrost/workspace/src/mod3.py").stdout.strip() == "VALUE = 33"
        recorded = json.loads(node.ssh("cat ~/.bifrost/workspace/.git/gpuops/deployed.json").stdout)
        assert recorded["commit"] == head2 and recorded["dest"].endswith("/.bifrost/workspace")

    # a file edited on the node and an untracked file: deploy resets the tracked one, keeps the untracked one
    node = nodes[0]
    node.ssh("cd ~/.bifrost/workspace && echo hacked > src/mod1.py && mkdir -p outputs scratch && "
             "touch outputs/keep.bin scratch/junk.txt")
    res = results(deploy(inv, repo), DEPLOY)
    assert res[node.name]["changed"] and res[node.name]["bundle_bytes"] == 0
    assert res[nodes[1].name]["changed"] is False
    assert node.ssh("head -1 ~/.bifrost/workspace/src/mod1.py").stdout.strip() == "VALUE = 1"
    assert node.ssh("test -f ~/.bifrost/workspace/scratch/junk.txt", check=False).returncode == 0

    # clean: untracked junk goes, excluded outputs stay; a rerun is unchanged
    res = results(deploy(inv, repo, workspace_clean=True), DEPLOY)
    assert res[node.name]["changed"] and res[node.name]["cleaned"] == ["scratch/"]
    assert node.ssh("test -e ~/.bifrost/workspace/scratch", check=False).returncode != 0
    assert node.ssh("test -f ~/.bifrost/workspace/outputs/keep.bin", check=False).returncode == 0
    assert results(deploy(inv, repo, workspace_clean=True), DEPLOY)[node.name]["changed"] is False


def test_dirty_tree_warn_ship_fail(runpod_node, sim, tmp_path):
    inv = sim.inventory([runpod_node], tmp_path / "inv.yml")
    repo = make_repo(tmp_path / "repo")
    head = git(repo, "rev-parse", "HEAD")
    (repo / "src" / "mod0.py").write_text("VALUE = 'edited, not committed'\n")
    (repo / "notes.txt").write_text("untracked, not ignored\n")
    (repo / "outputs").mkdir()
    (repo / "outputs" / "big.bin").write_text("ignored\n")
    status_before = git(repo, "status", "--porcelain")
    objects_before = git(repo, "count-objects", "-v")
    name = runpod_node.name

    # default: warn and deploy HEAD only (plain output here, to see the warning as a user does)
    proc = run_playbook(PLAYBOOK, inv, {"workspace_src": str(repo)})
    assert proc.returncode == 0, proc.stdout[-3000:]
    shown = " ".join((proc.stdout + proc.stderr).split())
    assert "[WARNING]: 2 uncommitted or untracked change(s)" in shown and "are NOT deployed" in shown
    assert "M src/mod0.py" in shown and "A notes.txt" in shown and "big.bin" not in shown
    assert runpod_node.ssh("head -1 ~/.bifrost/workspace/src/mod0.py").stdout.strip() == "VALUE = 0"

    proc = deploy(inv, repo, workspace_dirty="ship")
    r = results(proc, DEPLOY)[name]
    assert r["changed"] and r["dirty"] is True and r["dirty_shipped"] is True and r["commit"] == head
    assert sorted((c["status"], c["path"]) for c in r["dirty_changes"]) == [("A", "notes.txt"), ("M", "src/mod0.py")]
    assert node_head(runpod_node) == head  # HEAD stays the commit; the changes are laid over it
    assert "edited, not committed" in runpod_node.ssh("cat ~/.bifrost/workspace/src/mod0.py").stdout
    assert runpod_node.ssh("cat ~/.bifrost/workspace/notes.txt").stdout == "untracked, not ignored\n"
    assert runpod_node.ssh("test -e ~/.bifrost/workspace/outputs", check=False).returncode != 0
    diff_sha = r["dirty_diff_sha256"]
    assert len(diff_sha) == 64
    recorded = json.loads(runpod_node.ssh("cat ~/.bifrost/workspace/.git/gpuops/deployed.json").stdout)
    assert recorded["dirty_diff_sha256"] == diff_sha and recorded["dirty_shipped"] is True
    # reproduce the hash independently: in a copy, stage everything and hash git's own binary diff
    copy = tmp_path / "copy"
    shutil.copytree(repo, copy, symlinks=True)
    git(copy, "add", "-A")
    staged = subprocess.run(["git", "diff", "--cached", "--binary", "--full-index", "--no-renames", "HEAD"], cwd=copy,
                            capture_output=True, check=True).stdout
    assert b"notes.txt" in staged and b"edited, not committed" in staged
    assert hashlib.sha256(staged).hexdigest() == diff_sha

    again = results(deploy(inv, repo, workspace_dirty="ship"), DEPLOY)[name]
    assert again["changed"] is False and again["dirty_diff_sha256"] == diff_sha and again["bundle_bytes"] == 0

    (repo / "src" / "mod0.py").write_text("VALUE = 'edited twice'\n")
    proc = deploy(inv, repo, ok=False, workspace_dirty="fail")
    assert proc.returncode != 0
    r = results(proc, DEPLOY)[name]
    assert r["failed"] and "uncommitted or untracked change(s)" in r["msg"] and "mod0.py" in r["msg"]
    assert "edited, not committed" in runpod_node.ssh("cat ~/.bifrost/workspace/src/mod0.py").stdout  # untouched

    # a bad variable fails in the role's argument validation, before anything is sent
    proc = deploy(inv, repo, ok=False, workspace_dirty="sometimes")
    assert proc.returncode != 0
    msg = results(proc, "Validating arguments against arg spec 'main'")[name]["msg"]
    assert "workspace_dirty" in msg and "sometimes" in msg

    # the local repository was never written to: same status, same objects
    assert git(repo, "status", "--porcelain") == status_before
    assert git(repo, "count-objects", "-v") == objects_before


def test_submodules_first_and_incremental(vast_node, sim, tmp_path):
    inv = sim.inventory([vast_node], tmp_path / "inv.yml")
    lib = make_repo(tmp_path / "lib", files=3)
    repo = make_repo(tmp_path / "repo", files=3)
    git(repo, "-c", "protocol.file.allow=always", "submodule", "add", "-q", str(lib), "third_party/lib")
    git(repo, "commit", "-q", "-m", "add lib")
    lib_head1 = git(repo / "third_party" / "lib", "rev-parse", "HEAD")

    r = results(deploy(inv, repo), DEPLOY)[vast_node.name]
    assert r["changed"] and [b["repo"] for b in r["bundles"]] == [".", "third_party/lib"]
    assert r["submodules"] == [{"path": "third_party/lib", "commit": lib_head1}]
    assert node_head(vast_node, "~/.bifrost/workspace/third_party/lib") == lib_head1
    assert vast_node.ssh("head -1 ~/.bifrost/workspace/third_party/lib/src/mod2.py").stdout.strip() == "VALUE = 2"

    # advance the submodule and record it in the superproject: both get a small delta bundle
    lib_head2 = commit(repo / "third_party" / "lib", "src/mod2.py", "VALUE = 22\n", "lib change")
    git(repo, "add", "third_party/lib")
    git(repo, "commit", "-q", "-m", "bump lib")
    r2 = results(deploy(inv, repo), DEPLOY)[vast_node.name]
    sizes = {b["repo"]: b["size"] for b in r2["bundles"]}
    assert set(sizes) == {".", "third_party/lib"}
    assert sizes["third_party/lib"] < {b["repo"]: b["size"] for b in r["bundles"]}["third_party/lib"]
    assert node_head(vast_node, "~/.bifrost/workspace/third_party/lib") == lib_head2
    assert vast_node.ssh("cat ~/.bifrost/workspace/third_party/lib/src/mod2.py").stdout == "VALUE = 22\n"
    # an uncommitted edit inside the submodule is not part of any commit: reported, not deployed, no change
    (repo / "third_party" / "lib" / "src" / "mod0.py").write_text("VALUE = 'local only'\n")
    r3 = results(deploy(inv, repo), DEPLOY)[vast_node.name]
    assert r3["changed"] is False and r3["dirty_submodules"] == ["third_party/lib"] and r3["dirty"] is False
