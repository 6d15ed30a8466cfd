"""gpuops-sim: a local GPU cloud that speaks the RunPod and Vast HTTP APIs, backed by real SSH nodes."""
