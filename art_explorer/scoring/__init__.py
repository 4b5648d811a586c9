"""Measuring and scoring pictures."""
