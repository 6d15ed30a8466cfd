"""The simulator's images (sim/images.py, data/images.yaml, data/image_tool.py): a node has on PATH only what its
image has, and its package manager, sudo and sshd are stand-ins that never touch the host."""

from __future__ import annotations

import subprocess

import pytest

from gpuops.sim.images import ImageCatalog, build_path_dir, cuda_of_tag, valid_reference, write_node_image


@pytest.mark.parametrize("ref,cuda", [
    ("pytorch/pytorch:2.4.0-cuda12.4-cudnn9-runtime", "12.4"),
    ("nvidia/cuda:12.8.0-runtime-ubuntu22.04", "12.8"),
    ("runpod/pytorch:2.4.0-py3.11-cuda12.4.1-devel-ubuntu22.04", "12.4"),
    ("vastai/base-image:cuda-12.1.1-auto", "12.1"),
    ("ubuntu:22.04", None),
])
def test_cuda_from_tags(ref, cuda):
    assert cuda_of_tag(ref) == cuda


def test_catalog_entries_and_the_minimal_default():
    cat = ImageCatalog.load([{"match": "acme/*", "tools": ["git"], "package_manager": "none", "user": "me"}])
    assert cat.resolve("acme/x:1").tools == {"git"} and not cat.resolve("acme/x:1").root
    pt = cat.resolve("pytorch/pytorch:2.4.0-cuda12.4-cudnn9-runtime")
    assert "python3" in pt.tools and not {"git", "tmux", "openssh-server"} & pt.tools and pt.cuda == "12.4"
    tmpl = cat.resolve("runpod/pytorch:2.4.0-py3.11-cuda12.4.1-devel-ubuntu22.04")
    assert tmpl.entrypoint == "sshd" and "openssh-client" in tmpl.tools
    unknown = cat.resolve("example/whatever:3")
    assert unknown.tools == {"python3", "tar"} and unknown.package_manager == "apt" and unknown.exists
    assert not cat.resolve("Acme/Upper:1").exists and not valid_reference("has space:1")
    assert valid_reference("vastai/base-image:@vastai-automatic-tag")


def test_a_bad_catalog_entry_is_refused():
    with pytest.raises(Exception, match="unknown tools"):
        ImageCatalog.load([{"match": "x/*", "tools": ["gitt"]}])


def _node(tmp_path, image):
    node = tmp_path / "node"
    (node / "bin").mkdir(parents=True)
    path_dir = build_path_dir(tmp_path / "images", image)
    write_node_image(node, image, {"package_install_seconds": 0}, "/usr/sbin/sshd")
    env = {"PATH": f"{node / 'bin'}:{path_dir}", "GPUOPS_SIM_NODE_DIR": str(node), "HOME": str(tmp_path)}

    def sh(cmd):
        return subprocess.run(["/bin/sh", "-c", cmd], env=env, capture_output=True, text=True, timeout=30)
    return node, sh


def test_a_runtime_image_lacks_git_and_tmux_until_apt_installs_them(tmp_path):
    image = ImageCatalog.load().resolve("pytorch/pytorch:2.4.0-cuda12.4-cudnn9-runtime")
    node, sh = _node(tmp_path, image)
    assert sh("command -v git tmux sshd sudo").stdout == ""
    assert sh("command -v python3").returncode == 0 and sh("id -u").stdout.strip() == "0"
    no_lists = sh("apt-get install -y git")
    assert no_lists.returncode == 100 and "Unable to locate package git" in no_lists.stderr
    assert sh("apt-get update && apt-get install -y git tmux").returncode == 0
    assert sh("command -v git").stdout.strip() == str(node / "bin" / "git")
    assert sh("git --version").stdout.startswith("git version")
    assert sh("apt-get install -y not-a-package").returncode == 100


def test_a_cuda_image_has_not_even_python(tmp_path):
    image = ImageCatalog.load().resolve("nvidia/cuda:12.4.1-runtime-ubuntu22.04")
    _node_dir, sh = _node(tmp_path, image)
    assert sh("command -v python3 python").stdout == "" and sh("command -v tar sh").returncode == 0


def test_not_root_cannot_install_and_sudo_works_only_where_the_image_has_it(tmp_path):
    cat = ImageCatalog.load([{"match": "a/nosudo:*", "tools": ["python3"], "user": "trainer"},
                             {"match": "a/sudo:*", "tools": ["python3", "sudo"], "user": "trainer"}])
    _n, sh = _node(tmp_path / "a", cat.resolve("a/nosudo:1"))
    assert sh("id -u").stdout.strip() == "1000" and sh("command -v sudo").stdout == ""
    denied = sh("apt-get update")
    assert denied.returncode == 100 and "are you root?" in denied.stderr
    node, sh = _node(tmp_path / "b", cat.resolve("a/sudo:1"))
    assert sh("sudo -n id -u").stdout.strip() == "0"
    assert sh("sudo -n apt-get update && sudo -n apt-get install -y tmux").returncode == 0
    assert (node / "bin" / "tmux").exists()


def test_the_stand_ins_never_run_the_hosts_package_manager(tmp_path):
    image = ImageCatalog.load().resolve("ubuntu:22.04")
    path_dir = build_path_dir(tmp_path / "images", image)
    for name in ("apt-get", "apt", "sudo", "id", "service"):
        p = path_dir / name
        if p.exists():
            assert not p.is_symlink() and "image_tool.py" in p.read_text(), name
    assert not (path_dir / "dpkg").exists() and not (path_dir / "systemctl").exists()
