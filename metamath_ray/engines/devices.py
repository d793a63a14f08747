"""What accelerators this process can use (a separate module: importing it may import torch)."""

from __future__ import annotations


def cuda_available() -> bool:
    try:
        import torch

        return torch.cuda.is_available()
    except Exception:  # noqa: BLE001 - no torch, broken driver: no CUDA
        return False
