"""The scene: its parameter schema, encodings, sampling, structure, the renderer client and
the differentiable twin."""
