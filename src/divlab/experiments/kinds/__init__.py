"""One package per experiment kind (see ``divlab.experiments`` for how to add one)."""
