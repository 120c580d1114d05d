"""The engine under every front end: the predictor (prompts -> masks) with its transforms,
image conversion, embedding cache, checkpoints and shared models, and the automatic mask
generator (``amg/``)."""
