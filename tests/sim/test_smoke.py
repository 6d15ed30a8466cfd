"""The simulator boots real SSH nodes on both providers and tears them down."""


def test_runpod_and_vast_nodes_run_commands(make_nodes):
    rp, vast = make_nodes(2, "mixed")
    out = rp.ssh("nvidia-smi -L; echo $HOME").stdout
    assert "NVIDIA GeForce RTX 4090" in out and "/home" in out
    assert vast.ssh("pwd").stdout.strip().endswith("/home")
    assert rp.host != vast.host or rp.port != vast.port
