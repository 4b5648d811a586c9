"""The bundled scene renderer: an HTTP service (server.py) around `scene.render`.

See docs/scene.md for the scene and server.py for the API. `python -m
renderer.server` serves it; `python -m renderer.gallery` draws a contact sheet.
"""

__version__ = "2.0.0"
