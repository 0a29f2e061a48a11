"""Base models: resolvers (a spec's `model.base` -> files) and the conversion cache."""
