"""The bundled scene renderer: an HTTP service (server.py) around `scene.render`.

See ../../shared/spec/renderer.md for the scene and the API. `python -m
renderer.server` serves it; `python -m renderer.gallery` draws a contact sheet.
"""

__version__ = "1.0.0"
