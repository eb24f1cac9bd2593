"""Training: one loop on HF Accelerate, composable robust objectives, and alpha selection."""
