"""Training: one sharded loop (`loop.train`), losses and metrics by task, orbax checkpoints."""

from taskonomy_jax.train.checkpoint import load_variables, restore_encoder

__all__ = ["load_variables", "restore_encoder"]
