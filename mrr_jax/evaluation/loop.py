"""The one evaluation loop: periodic evaluation while training and `mrr_jax.evaluate` both run it.

Pairs (mrr_jax.data.pairs.Example) go through the network input as training
makes it, the generator, and the metric protocol (mrr_jax.evaluation.metrics),
batch by batch on all local devices: one jit over the batch, its first axis
split over the devices, the params put on them once per evaluation. Results
are per-image rows; `mean_scores` turns rows into the data set's figures.
"""
import os
from typing import Any, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

from absl import logging
import jax
import jax.numpy as jnp
import numpy as np

from mrr_jax import visualize
from mrr_jax.data import degradations
from mrr_jax.data.pairs import Example
from mrr_jax.evaluation import lpips, metrics, predict

SCORES = ('psnr', 'ssim', 'lpips')


def _score_fn(generator, lpips_net: Optional[str], channel: str, border: int, quantize: str):
  """Jitted (params, lpips params, LR-up pixels, HR pixels) -> per-image results."""

  def score(params, lpips_params, up, hr):
    sr = predict.super_resolve(generator, params, up, quantize)
    hr = jnp.asarray(hr, jnp.float32)
    out = {'sr': jnp.round(sr).astype(jnp.uint8)}
    out['psnr'], out['ssim'] = metrics.psnr_ssim(sr, hr, channel, border)
    if lpips_net:
      out['lpips'] = lpips.distance(lpips_net, lpips_params, sr / 127.5 - 1.0, hr / 127.5 - 1.0)
    return out

  return jax.jit(score)


def _batched(examples: Iterable[Example], size: int) -> Iterator[List[Example]]:
  batch = []
  for ex in examples:
    batch.append(ex)
    if len(batch) == size:
      yield batch
      batch = []
  if batch:
    yield batch


def _padded(batch: List[Example], size: int) -> Dict[str, np.ndarray]:
  """Network inputs and HR of a batch, padded with zero images to `size` (pads are dropped)."""
  lr = np.stack([ex.lr for ex in batch])
  up = degradations.upsample_lr_batch(lr).astype(np.uint8)
  hr = np.stack([ex.hr for ex in batch])
  pad = size - len(batch)
  if pad:
    up = np.concatenate([up, np.zeros((pad,) + up.shape[1:], np.uint8)])
    hr = np.concatenate([hr, np.zeros((pad,) + hr.shape[1:], np.uint8)])
  return {'up': up, 'hr': hr}


def score_examples(generator, params, examples: Iterable[Example], batch_size: int = 16,
                   lpips_weights: Optional[Tuple[str, Any]] = None, crop_border: int = 8,
                   channel: str = 'y', quantize: str = 'round', save_dir: Optional[str] = None,
                   num_pictures: int = 0, total: Optional[int] = None) -> Dict[str, Any]:
  """{'rows': per-image {'name', 'psnr', 'ssim'[, 'lpips']}, 'pictures': the first images}.

  generator None scores the bicubic input. save_dir: also writes sr/<name>.png.
  num_pictures: how many images (bicubic, SR, HR, attention maps) to keep for
  save_pictures.
  """
  mesh = jax.sharding.Mesh(np.array(jax.local_devices()), ('batch',))
  split = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec('batch'))
  replicated = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
  step_size = -(-max(batch_size, 1) // mesh.size) * mesh.size
  lpips_net, lpips_params = lpips_weights or (None, {})
  score = _score_fn(generator, lpips_net, channel, crop_border, quantize)
  params_on_devices = jax.device_put(params, replicated)
  lpips_on_devices = jax.device_put(lpips_params, replicated)
  with_attention = generator is not None and generator.attention != 'none'
  maps_fn = jax.jit(lambda p, x: predict.attention_maps(generator, p, x)) if with_attention else None
  rows, pictures = [], {'bicubic': [], 'sr': [], 'hr': [], 'names': [], 'maps': []}
  for batch in _batched(examples, step_size):
    arrays = _padded(batch, step_size)
    out = score(params_on_devices, lpips_on_devices,
                *jax.device_put((arrays['up'], arrays['hr']), split))
    out = {k: np.asarray(v)[:len(batch)] for k, v in out.items()}
    for i, ex in enumerate(batch):
      rows.append({'name': ex.name, **{k: float(out[k][i]) for k in out if k != 'sr'}})
      if save_dir:
        visualize.save_png(os.path.join(save_dir, 'sr', ex.name + '.png'), out['sr'][i])
    take = slice(0, max(0, min(num_pictures - len(pictures['sr']), len(batch))))
    if take.stop:
      pictures['bicubic'].extend(arrays['up'][take])
      pictures['sr'].extend(out['sr'][take])
      pictures['hr'].extend(arrays['hr'][take])
      pictures['names'].extend(r['name'] for r in rows[len(rows) - len(batch):][take])
      if maps_fn is not None:
        maps = maps_fn(params_on_devices, jax.device_put(arrays['up'], split))
        pictures['map_names'] = predict.forward_order(maps)
        pictures['maps'].append([np.asarray(maps[n])[take] for n in pictures['map_names']])
    logging.info('scored %d%s images', len(rows), f' / {total}' if total else '')
  return {'rows': rows, 'pictures': pictures}


def mean_scores(rows: Sequence[Dict[str, Any]]) -> Dict[str, float]:
  """The data set's figures: the mean of each per-image score (PSNR inf stays inf)."""
  return {k: float(np.mean([r[k] for r in rows])) for k in SCORES if rows and k in rows[0]}


def scored_grid(pictures: Dict[str, Any], rows: List[Dict[str, Any]]) -> Optional[np.ndarray]:
  """bicubic | SR | HR per face, each SR captioned with its PSNR (and SSIM); None if no pictures."""
  if not pictures['sr']:
    return None
  by_name = {r['name']: r for r in rows}
  sr = [visualize.caption(img, f'{by_name[n]["psnr"]:.2f} dB / {by_name[n]["ssim"]:.3f}')
        for img, n in zip(pictures['sr'], pictures['names'])]
  return visualize.comparison_grid([np.stack(pictures['bicubic']), np.stack(sr),
                                    np.stack(pictures['hr'])], ['bicubic', 'SR (PSNR, SSIM)', 'HR'])


def save_pictures(save_dir: str, pictures: Dict[str, Any], is_bicubic: bool = False) -> List[str]:
  """comparison.png (bicubic | SR | HR per row) and attention.png (the paper's Fig. 4)."""
  if not pictures['sr']:
    return []
  if is_bicubic:
    columns, labels = [pictures['bicubic'], pictures['hr']], ['bicubic', 'HR']
  else:
    columns, labels = [pictures['bicubic'], pictures['sr'], pictures['hr']], ['bicubic', 'SR', 'HR']
  written = [visualize.save_png(os.path.join(save_dir, 'comparison.png'),
                                visualize.comparison_grid([np.stack(c) for c in columns], labels))]
  if pictures['maps']:
    maps = [np.concatenate(parts) for parts in zip(*pictures['maps'])]
    rows = visualize.attention_rows(np.stack(pictures['bicubic']), np.stack(pictures['sr']), maps)
    labels = ['bicubic', 'SR'] + pictures['map_names']
    written.append(visualize.save_png(os.path.join(save_dir, 'attention.png'),
                                      visualize.tile_grid(rows, labels)))
  return written
