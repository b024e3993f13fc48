r"""Training curves as PNG from a workdir's TensorBoard event files.

  python -m mrr_jax.plot --workdir runs/mrrnet [--output runs/mrrnet/curves.png]

One panel per group: the losses (train_l1, train_g_loss; in the GAN phase also
g_gan, g_pcp, d_loss), the D outputs (d_real, d_fake), the learning rates, and
eval PSNR and SSIM when the run evaluated. Reads the event files with
TensorBoard's own reader (no TensorFlow needed); draws with matplotlib's Agg
backend (no display needed).
"""
import glob
import os
import sys
from typing import Dict, List, Sequence, Tuple

from absl import flags
import numpy as np

from mrr_jax import cli, outputs


# Panels: (title, tags, y log scale?)
PANELS: Tuple[Tuple[str, Tuple[str, ...], bool], ...] = (
    ('losses', ('train_l1', 'train_g_loss', 'train_g_gan', 'train_g_pcp', 'train_d_loss'), True),
    ('discriminator', ('train_d_real', 'train_d_fake'), False),
    ('learning rates', ('train_g_lr', 'train_d_lr'), True),
    ('eval PSNR (dB)', ('eval_psnr',), False),
    ('eval SSIM', ('eval_ssim',), False),
)


class PlotError(ValueError):
  """A workdir without event files or scalars."""


def read_scalars(workdir: str) -> Dict[str, List[Tuple[int, float]]]:
  """{tag: [(step, value), ...]} from every event file in workdir, sorted by step."""
  from tensorboard.backend.event_processing import event_accumulator  # pylint: disable=g-import-not-at-top
  files = sorted(glob.glob(os.path.join(workdir, 'events.out.tfevents.*')))
  if not files:
    raise PlotError(f'no events.out.tfevents.* in {workdir}: not a training workdir, or it '
                    'has not logged yet')
  series: Dict[str, Dict[int, float]] = {}
  for path in files:
    acc = event_accumulator.EventAccumulator(path, size_guidance={'tensors': 0, 'scalars': 0})
    acc.Reload()
    tags = acc.Tags()
    for tag in tags.get('scalars', []):
      for e in acc.Scalars(tag):
        series.setdefault(tag, {})[e.step] = e.value
    for tag in tags.get('tensors', []):  # clu writes scalars as tensor summaries
      for e in acc.Tensors(tag):
        value = np.asarray(_tensor_value(e.tensor_proto))
        if value.size == 1:
          series.setdefault(tag, {})[e.step] = float(value.reshape(()))
  return {tag: sorted(points.items()) for tag, points in series.items()}


def _tensor_value(proto):
  from tensorboard.util import tensor_util  # pylint: disable=g-import-not-at-top
  return tensor_util.make_ndarray(proto)


def plot(series: Dict[str, List[Tuple[int, float]]], path: str, title: str = '') -> str:
  """Writes the panels that have data to path (PNG, atomically); returns path."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  from matplotlib import pyplot as plt  # pylint: disable=g-import-not-at-top
  panels = [(name, [t for t in tags if t in series], log) for name, tags, log in PANELS]
  panels = [p for p in panels if p[1]]
  if not panels:
    raise PlotError(f'no training scalars to plot (found: {", ".join(sorted(series)) or "none"})')
  fig, axes = plt.subplots(len(panels), 1, figsize=(8, 2.6 * len(panels)), sharex=True,
                           squeeze=False)
  for ax, (name, tags, log) in zip(axes[:, 0], panels):
    for tag in tags:
      steps, values = zip(*series[tag])
      ax.plot(steps, values, label=tag.split('_', 1)[1], marker='.' if len(steps) < 30 else None)
    if log and all(v > 0 for t in tags for _, v in series[t]):
      ax.set_yscale('log')
    ax.set_title(name, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
  axes[-1, 0].set_xlabel('step')
  if title:
    fig.suptitle(title, fontsize=10)
  fig.tight_layout()
  outputs.write_atomically(path, lambda f: fig.savefig(f, format='png', dpi=100))
  plt.close(fig)
  return path


def define_flags(fv: flags.FlagValues = flags.FLAGS) -> flags.FlagValues:
  flags.DEFINE_string('workdir', None, 'Training workdir (holds events.out.tfevents.*).',
                      flag_values=fv)
  flags.DEFINE_string('output', None, 'PNG to write (default: WORKDIR/curves.png).',
                      flag_values=fv)
  return fv


def main(argv: Sequence[str], fv: flags.FlagValues = flags.FLAGS) -> None:
  cli.check_args(argv, fv, ('workdir',))
  output = fv.output or os.path.join(fv.workdir, 'curves.png')
  try:
    outputs.check_file(output, '--output')
    path = plot(read_scalars(fv.workdir), output, os.path.abspath(fv.workdir))
  except (PlotError, outputs.OutputPathError) as e:
    sys.exit(f'error: {e}')
  print(path)


if __name__ == '__main__':
  define_flags()
  cli.run(main)
