"""Device mesh and array placement: all partitioning logic of the training loop lives here.

One mesh axis, `data`: batches are split over it (data parallel); parameters and optimizer state
are replicated, or, with `fsdp=True`, each array is split along its largest axis that the device
count divides (FSDP/ZeRO-3 style: XLA gathers weights where a layer needs them).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

DATA_AXIS = "data"


def maybe_initialize_distributed(enabled: bool) -> None:
  """`jax.distributed.initialize()` for multi-host runs (TPU VM pods, multi-node GPU).

  On TPU VMs and SLURM/Open MPI clusters jax discovers the coordinator itself; elsewhere set
  JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES and JAX_PROCESS_ID (see BUILD_NOTES.md, "Running at
  paper scale: TPU VMs and GPUs").
  """
  if enabled and not jax.distributed.is_initialized():
    kwargs = {}
    if "JAX_COORDINATOR_ADDRESS" in os.environ:
      kwargs = dict(coordinator_address=os.environ["JAX_COORDINATOR_ADDRESS"],
                    num_processes=int(os.environ["JAX_NUM_PROCESSES"]),
                    process_id=int(os.environ["JAX_PROCESS_ID"]))
    jax.distributed.initialize(**kwargs)


def make_mesh(num_devices: int | None = None) -> Mesh:
  """A 1-D `data` mesh over the first `num_devices` devices (all devices when None)."""
  devices = jax.devices()
  if num_devices is not None:
    if not 1 <= num_devices <= len(devices):
      raise ValueError(f"num_devices={num_devices} but {len(devices)} devices are available")
    devices = devices[:num_devices]
  return Mesh(np.array(devices), (DATA_AXIS,))


def check_batch_size(global_batch: int, mesh: Mesh) -> None:
  """Raises ValueError unless the global batch splits evenly over devices and processes."""
  n = mesh.size
  if global_batch <= 0 or global_batch % n:
    raise ValueError(f"batch_size={global_batch} is not divisible by the {n} devices of the "
                     f"mesh; use a multiple of {n}")
  if global_batch % jax.process_count():
    raise ValueError(f"batch_size={global_batch} is not divisible by the "
                     f"{jax.process_count()} processes")


def batch_sharding(mesh: Mesh) -> NamedSharding:
  """Leading (batch) axis split over `data`, other axes whole."""
  return NamedSharding(mesh, P(DATA_AXIS))


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def fsdp_spec(shape: tuple[int, ...], num_devices: int, min_size: int = 2 ** 12) -> P:
  """Split the largest axis that `num_devices` divides; small arrays stay replicated."""
  if int(np.prod(shape, dtype=np.int64)) < min_size:
    return P()
  for axis in sorted(range(len(shape)), key=lambda a: -shape[a]):
    if shape[axis] % num_devices == 0:
      spec = [None] * len(shape)
      spec[axis] = DATA_AXIS
      return P(*spec)
  return P()


def state_shardings(abstract_state: Any, mesh: Mesh, fsdp: bool = False) -> Any:
  """A sharding per leaf of a (abstract) train state: replicated, or FSDP-split when `fsdp`."""
  if not fsdp:
    return jax.tree.map(lambda _: replicated(mesh), abstract_state)
  return jax.tree.map(lambda x: NamedSharding(mesh, fsdp_spec(tuple(x.shape), mesh.size)),
                      abstract_state)


def global_batch(local: Mapping[str, np.ndarray], mesh: Mesh) -> dict[str, jax.Array]:
  """This process's slice of the batch -> global arrays sharded over `data`."""
  sharding = batch_sharding(mesh)
  return {k: jax.make_array_from_process_local_data(sharding, np.asarray(v))
          for k, v in local.items()}
