"""Reading images and writing results (no torch, no Qt)."""
