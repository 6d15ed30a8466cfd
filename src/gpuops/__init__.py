"""gpu.ops: GPU training on rented cloud GPUs and home-lab nodes, driven by Ansible."""

__version__ = "0.1.0"
