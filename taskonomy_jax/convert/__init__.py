"""Converters from published weights into this project's Flax variables and checkpoints."""
