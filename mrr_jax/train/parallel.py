"""Data parallelism plumbing in one place: device reshaping, prefetch, replication.

Batches are dicts of host numpy arrays with a leading per-process batch axis;
`shard` splits that axis over the local devices as [devices, per_device, ...],
the layout jax.pmap expects.
"""
import collections
import itertools
from typing import Any, Dict, Iterable, Iterator, List, Optional, Sequence

import jax
import jax.flatten_util
import numpy as np

# The pmap axis name of the train steps, and the mesh axis of the arrays this
# module puts on the devices. They must be one name: pmap's outputs carry a
# mesh named after its axis, and inputs on a mesh of another name count as a
# new signature, so a step's second call would compile the whole step again.
AXIS = 'batch'


def check_batch_size(global_batch_size: int) -> int:
  """Per-device batch size; a clear error when the batch does not divide evenly."""
  devices = jax.device_count()
  if global_batch_size <= 0 or global_batch_size % devices:
    raise ValueError(
        f'batch_size={global_batch_size} is not divisible by the {devices} devices '
        f'({jax.process_count()} process(es) x {jax.local_device_count()} local); '
        f'use a multiple of {devices}.')
  return global_batch_size // devices


def shard(batch: Dict[str, Any], num_devices: Optional[int] = None) -> Dict[str, Any]:
  """[B, ...] -> [local_devices, B / local_devices, ...] for every array."""
  n = num_devices or jax.local_device_count()

  def split(x):
    x = np.asarray(x)
    if x.shape[0] % n:
      raise ValueError(f'per-process batch {x.shape[0]} does not split over {n} local devices')
    return x.reshape((n, x.shape[0] // n) + x.shape[1:])

  return jax.tree_util.tree_map(split, batch)


def prefetch_to_device(batches: Iterable[Any], size: int = 2, with_extra: bool = False
                       ) -> Iterator[Any]:
  """Shards host batches and keeps `size` of them in flight on the devices.

  with_extra: items are (batch, extra) pairs and come out as (device batch,
  extra), e.g. the input-iterator state that goes with each batch.
  """
  sharding = device_axis_sharding(jax.local_devices())
  queue = collections.deque()

  def put(item):
    batch, extra = item if with_extra else (item, None)
    on_device = jax.device_put(shard(batch), sharding)
    queue.append((on_device, extra) if with_extra else on_device)

  it = iter(batches)
  for batch in itertools.islice(it, size):
    put(batch)
  while queue:
    yield queue.popleft()
    for batch in itertools.islice(it, 1):
      put(batch)


def device_axis_sharding(devices: Sequence[Any]) -> jax.sharding.NamedSharding:
  """Leading axis split over `devices`: the layout pmap reads and writes."""
  mesh = jax.sharding.Mesh(np.asarray(devices), (AXIS,))
  return jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec(AXIS))


def replicate(tree: Any, devices: Optional[Sequence[Any]] = None) -> Any:
  """Copies a pytree onto every local device (leading device axis)."""
  devices = devices or jax.local_devices()
  stacked = jax.tree_util.tree_map(
      lambda x: np.broadcast_to(np.asarray(x), (len(devices),) + np.shape(x)), tree)
  return jax.device_put(stacked, device_axis_sharding(devices))


def mean_over_devices(tree: Any, axis_name: str = AXIS) -> Any:
  """jax.lax.pmean of a pytree, as one all-reduce per dtype when there is more than one device.

  Per leaf, XLA's GPU compiler combines the all-reduces itself, and around
  the combined buffer it left each gradient's cast, bias-gradient sum and
  slice as a kernel of its own: 2,075 kernels in the L1 step on 8 devices
  against 1,551 on one. Concatenated here, those fuse into the concatenation
  and the Adam updates (1,576 kernels). The means are the same numbers.
  On one device the plain pmean stays (the CPU benchmark's program).
  """
  if jax.lax.axis_size(axis_name) == 1:
    return jax.lax.pmean(tree, axis_name)
  leaves, treedef = jax.tree_util.tree_flatten(tree)
  by_dtype: Dict[Any, List[int]] = {}
  for i, leaf in enumerate(leaves):
    by_dtype.setdefault(leaf.dtype, []).append(i)
  for picked in by_dtype.values():  # one dtype each, so ravel_pytree promotes nothing
    flat, unravel = jax.flatten_util.ravel_pytree([leaves[i] for i in picked])
    for i, mean in zip(picked, unravel(jax.lax.pmean(flat, axis_name))):
      leaves[i] = mean
  return jax.tree_util.tree_unflatten(treedef, leaves)


def unreplicate(tree: Any) -> Any:
  """Takes device 0's copy of a replicated pytree, as host numpy."""
  return jax.tree_util.tree_map(lambda x: np.asarray(x[0]), tree)


def wait_for_all_processes(name: str, timeout_s: int = 3600) -> None:
  """A barrier through jax.distributed's coordination service; nothing on one process.

  Not a device collective: on CPU, gloo gives a process 30 s to join a
  collective, and before the first step the processes can be further apart
  than that (restoring, building data, compiling: only process 0 writes the
  persistent compilation cache, so where each host keeps its own cache, process
  0 loads programs the others compile). The trainer compiles ahead, then waits here.
  """
  if jax.process_count() == 1:
    return
  from jax._src import distributed  # pylint: disable=g-import-not-at-top  (no public barrier)
  distributed.global_state.client.wait_at_barrier(name, timeout_s * 1000)
