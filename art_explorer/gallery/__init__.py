"""The curation gallery: a local FastAPI app over output/, data/ and references/ (app.py
wires it; gallery.py at the top serves it)."""
