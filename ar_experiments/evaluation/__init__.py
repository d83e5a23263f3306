"""Video-level multi-view (temporal x spatial) testing and the per-run artifacts (predictions, confusion).
May import data/ and safety/; nothing of models or training."""
