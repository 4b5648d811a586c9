"""Predict's search: image → params."""
