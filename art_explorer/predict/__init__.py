"""Predict: image → params, as stages over one search state (pipeline.py; docs/predict.md)."""
