"""metamath-ray: MetaMath-style augmentation, fine-tuning and evaluation on Ray."""

__version__ = "0.1.0"
