"""The curated references: the one writer of references/ (store)."""
