"""The networks: the forward and inverse models, perceptual distances, checkpoints."""
