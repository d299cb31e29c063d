"""Device mesh and array placement: all partitioning logic of the training loop lives here.

One mesh axis, `data`: batches are split over it (data parallel); parameters and optimizer state
are replicated, or, with `fsdp=True`, each array is split along its largest axis that the device
count divides (FSDP/ZeRO-3 style: XLA gathers weights where a layer needs them).

Stacked models (K transfer readouts vmapped as one, taskonomy_jax/transfer/readout.py) take the
other layout, `stacked_shardings`: every (K, ...) leaf is split along K over the same mesh axis
(model parallel over copies; each device holds K/D whole copies) and the batch is replicated,
since every copy reads the same examples.

A mesh is global (every process's devices: one network trained by all processes) or local
(`make_mesh(local=True)`: this process's devices only), for networks a process trains alone
(task bank, transfer units divided among processes: train/workers.py).
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


# Names the coordinator of a jax.distributed job where jax cannot discover it itself.
COORDINATOR_ENV = "JAX_COORDINATOR_ADDRESS"


def maybe_initialize_distributed(enabled: bool) -> None:
  """`jax.distributed.initialize()` for multi-host runs (TPU VM pods, multi-node GPU).

  On TPU VMs and SLURM/Open MPI clusters jax discovers the coordinator itself; elsewhere set
  JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES and JAX_PROCESS_ID (see BUILD_NOTES.md, "Running at
  paper scale: TPU VMs and GPUs").
  """
  if enabled and not jax.distributed.is_initialized():
    kwargs = {}
    if COORDINATOR_ENV in os.environ:
      kwargs = dict(coordinator_address=os.environ[COORDINATOR_ENV],
                    num_processes=int(os.environ["JAX_NUM_PROCESSES"]),
                    process_id=int(os.environ["JAX_PROCESS_ID"]))
    jax.distributed.initialize(**kwargs)


def make_mesh(num_devices: int | None = None, local: bool = False) -> Mesh:
  """A 1-D `data` mesh over the first `num_devices` devices (all devices when None): every
  process's devices, or with `local` this process's only."""
  devices = jax.local_devices() if local else jax.devices()
  if num_devices is not None:
    if not 1 <= num_devices <= len(devices):
      raise ValueError(f"num_devices={num_devices} but {len(devices)} devices are available")
    devices = devices[:num_devices]
  return Mesh(np.array(devices), (DATA_AXIS,))


def check_batch_size(global_batch: int, mesh: Mesh, processes: int | None = None) -> None:
  """Raises ValueError unless the global batch splits evenly over the mesh's devices and the
  `processes` reading it (default: every process; 1 for a local mesh)."""
  processes = jax.process_count() if processes is None else processes
  n = mesh.size
  if global_batch <= 0 or global_batch % n:
    raise ValueError(f"batch_size={global_batch} is not divisible by the {n} devices of the "
                     f"mesh; use a multiple of {n}")
  if global_batch % processes:
    raise ValueError(f"batch_size={global_batch} is not divisible by the "
                     f"{processes} processes")


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


def padded_stack_size(k: int, mesh: Mesh) -> int:
  """K stacked copies rounded up to a multiple of the mesh's devices: the padded copies (their
  outputs dropped) keep every device busy with ceil(K/D) copies, where splitting over the
  largest divisor of K would leave devices idle (K prime: all but one)."""
  return -(-k // mesh.size) * mesh.size


def stacked_shardings(abstract_state: Any, mesh: Mesh, stack_size: int) -> Any:
  """Stacked models: every leaf whose leading axis is the stack (`stack_size`, a multiple of the
  mesh's devices) split along it over `data` (device d holds copies [d*K/D, (d+1)*K/D)); other
  leaves (step, optimizer counts) replicated.

  Raises:
    ValueError: `stack_size` is not a multiple of the mesh's devices.
  """
  if stack_size % mesh.size:
    raise ValueError(f"{stack_size} stacked copies do not split over the {mesh.size} devices of "
                     f"the mesh; pad them to {padded_stack_size(stack_size, mesh)}")
  def one(x):
    if len(x.shape) and x.shape[0] == stack_size:
      return NamedSharding(mesh, P(DATA_AXIS))
    return replicated(mesh)
  return jax.tree.map(one, abstract_state)


def global_batch(local: Mapping[str, np.ndarray], mesh: Mesh,
                 sharding: NamedSharding | None = None) -> dict[str, jax.Array]:
  """This process's slice of the batch -> global arrays sharded over `data` (or laid out by
  `sharding`; replicated: every process passes the whole batch)."""
  sharding = batch_sharding(mesh) if sharding is None else sharding
  return {k: jax.make_array_from_process_local_data(sharding, np.asarray(v))
          for k, v in local.items()}
