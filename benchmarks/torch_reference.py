r"""PyTorch timing reference: the authors' MRRNet G, D and GAN step, re-implemented compactly.

Optional benchmark only (torch is no requirement of mrr_jax; nothing imports
this file). It rebuilds the modules as docs/architecture.md describes
the authors' code, with the authors' state_dict key names, checks the generator
against tests/data/golden_G.npz, then times CPU steps the way mrr_jax.bench
does (median of --iters after --warmup) and prints one JSON object per line.

  python benchmarks/torch_reference.py --check          # golden check only
  python benchmarks/torch_reference.py --mode train --phase l1 --batch 4
  python benchmarks/torch_reference.py --mode train --phase gan --batch 4
  python benchmarks/torch_reference.py --mode infer --batch 4
"""
import argparse
import json
import os
import resource
import statistics
import sys
import time

import numpy as np
import torch
from torch import nn
import torch.nn.functional as F

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# VGG19 `features` layout (torchvision): conv widths, 'M' = max-pool 2x2.
VGG19_CFG = (64, 64, 'M', 128, 128, 'M', 256, 256, 256, 256, 'M',
             512, 512, 512, 512, 'M', 512, 512, 512, 512)
# The slices the code takes of features; the in-place ReLUs make the first four
# taps post-ReLU (docs/architecture.md#perceptual-loss).
VGG_SLICES = ((0, 3), (3, 8), (8, 17), (17, 26), (26, 35))
PCP_WEIGHTS = (1 / 32, 1 / 16, 1 / 8, 1 / 4, 1.0)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class NormLayer(nn.Module):
  def __init__(self, ch, affine=True):
    super().__init__()
    self.norm = nn.InstanceNorm2d(ch, eps=1e-5, affine=affine)

  def forward(self, x):
    return self.norm(x)


class ConvLayer(nn.Module):
  """[nearest x2] -> ReflectionPad2d(k//2) -> Conv2d -> [InstanceNorm] -> [LeakyReLU 0.2]."""

  def __init__(self, cin, cout, k=3, scale='none', norm=False, act=False, bias=True):
    super().__init__()
    self.up = scale == 'up'
    self.pad = nn.ReflectionPad2d(k // 2)
    self.conv2d = nn.Conv2d(cin, cout, k, 2 if scale == 'down' else 1, bias=bias and not norm)
    self.norm = NormLayer(cout) if norm else None
    self.act = act

  def forward(self, x):
    if self.up:
      x = F.interpolate(x, scale_factor=2, mode='nearest')
    x = self.conv2d(self.pad(x))
    if self.norm is not None:
      x = self.norm(x)
    return F.leaky_relu(x, 0.2) if self.act else x


class Inception(nn.Module):
  def __init__(self, ch):
    super().__init__()
    w = ch // 4
    self.feature_extract_1 = nn.Sequential(nn.Conv2d(ch, w, 1))
    for k in (3, 5, 7):
      setattr(self, f'feature_extract_{k}',
              nn.Sequential(nn.ReflectionPad2d(k // 2), nn.Conv2d(ch, w, k)))

  def forward(self, x):
    return torch.cat([getattr(self, f'feature_extract_{k}')(x) for k in (1, 3, 5, 7)], 1)


class MultiscaleAttention(nn.Module):
  def __init__(self, ch):
    super().__init__()
    self.inception = Inception(ch)
    self.out_block = nn.Sequential(ConvLayer(ch, 1, 3))

  def forward(self, h):
    a = F.instance_norm(F.relu(self.inception(h)), eps=1e-5)  # non-affine
    return torch.sigmoid(self.out_block(a))


class ResBlock(nn.Module):
  def __init__(self, cin, cout, scale='none'):
    super().__init__()
    self.shortcut_func = (None if scale == 'none' and cin == cout
                          else ConvLayer(cin, cout, 3, scale))
    self.preact_func = nn.Sequential(NormLayer(cin), nn.LeakyReLU(0.2))
    self.conv1 = ConvLayer(cin, cout, 3, 'up' if scale == 'up' else 'none', norm=True, act=True)
    self.conv2 = ConvLayer(cout, cout, 3, 'down' if scale == 'down' else 'none', norm=True)
    self.att_func = MultiscaleAttention(cout)

  def forward(self, x):
    shortcut = x if self.shortcut_func is None else self.shortcut_func(x)
    h = self.conv2(self.conv1(self.preact_func(x)))
    return shortcut + h * self.att_func(h)


class MRRNet(nn.Module):
  def __init__(self, res_depth=10):
    super().__init__()
    self.encoder = nn.Sequential(
        ConvLayer(3, 32, 3), ResBlock(32, 64, 'down'), ResBlock(64, 128, 'down'),
        ResBlock(128, 128, 'down'))
    self.res_layers = nn.Sequential(*[ResBlock(128, 128) for _ in range(res_depth)])
    self.decoder = nn.Sequential(
        ResBlock(128, 128, 'up'), ResBlock(128, 64, 'up'), ResBlock(64, 32, 'up'))
    self.out_conv = ConvLayer(32, 3, 3)

  def forward(self, x):
    return self.out_conv(self.decoder(self.res_layers(self.encoder(x))))


def _d_block(cin, cout):
  conv = nn.utils.spectral_norm(nn.Conv2d(cin, cout, 3, 2))
  return nn.Sequential(nn.Sequential(nn.ReflectionPad2d(1), conv), nn.LeakyReLU(0.2))


class Discriminator(nn.Module):
  def __init__(self):
    super().__init__()
    self.d1, self.d2 = _d_block(3, 32), _d_block(32, 64)
    self.d3, self.d4 = _d_block(64, 128), _d_block(128, 256)
    self.d4_pred = nn.Sequential(
        nn.Sequential(nn.ReflectionPad2d(1), nn.Conv2d(256, 1, 3, bias=False)), nn.Tanh())

  def forward(self, x):
    return self.d4_pred(self.d4(self.d3(self.d2(self.d1(x)))))


def vgg19_features():
  layers, cin = [], 3
  for v in VGG19_CFG:
    if v == 'M':
      layers.append(nn.MaxPool2d(2, 2))
    else:
      layers += [nn.Conv2d(cin, v, 3, padding=1), nn.ReLU(inplace=True)]
      cin = v
  return nn.Sequential(*layers)


class PerceptualLoss(nn.Module):
  """The code's VGG19 feature loss: the slices run with in-place ReLUs (see VGG_SLICES)."""

  def __init__(self):
    super().__init__()
    self.features = vgg19_features().eval()
    for p in self.features.parameters():
      p.requires_grad_(False)
    self.register_buffer('mean', torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
    self.register_buffer('std', torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))

  def _taps(self, x):
    x = ((x + 1) / 2 - self.mean) / self.std
    x = F.interpolate(x, size=(224, 224), mode='bilinear', align_corners=False)
    taps = []
    for a, b in VGG_SLICES:
      x = self.features[a:b](x)
      taps.append(x)
    return taps

  def forward(self, sr, hr):
    with torch.no_grad():
      hr_taps = [t.detach() for t in self._taps(hr)]
    sr_taps = self._taps(sr)
    return sum(w * F.l1_loss(s, h) for w, s, h in zip(PCP_WEIGHTS, sr_taps, hr_taps))


def rahinge(real, fake, sign):
  return 0.5 * (F.relu(1 - sign * (real - fake.mean())).mean()
                + F.relu(1 + sign * (fake - real.mean())).mean())


class GanTrainer:
  """The code's optimize_parameters: G step (L1 + 0.01 RaHinge + 0.01 perceptual), then D step."""

  def __init__(self, g, d, pcp):
    self.g, self.d, self.pcp = g, d, pcp
    self.g_opt = torch.optim.Adam(g.parameters(), 1e-4, betas=(0.9, 0.99))
    self.d_opt = d and torch.optim.Adam(d.parameters(), 4e-4, betas=(0.9, 0.99))

  def l1_step(self, lr, hr):
    self.g_opt.zero_grad()
    loss = F.l1_loss(self.g(lr), hr)
    loss.backward()
    self.g_opt.step()
    return loss

  def gan_step(self, lr, hr):
    sr = self.g(lr)
    self.g_opt.zero_grad()
    g_loss = (F.l1_loss(sr, hr) + 0.01 * rahinge(self.d(hr), self.d(sr), -1.0)
              + 0.01 * self.pcp(sr, hr))
    g_loss.backward()
    self.g_opt.step()
    self.d_opt.zero_grad()  # drops the D gradients the G loss left behind
    with torch.no_grad():
      sr = self.g(lr)  # the code re-runs G with the updated weights
    d_loss = rahinge(self.d(hr), self.d(sr), 1.0)
    d_loss.backward()
    self.d_opt.step()
    return g_loss, d_loss


def check_golden():
  """Loads the recipe weights strictly and compares with golden_G.npz; returns max |diff|."""
  sys.path.insert(0, REPO)
  from tests import golden_recipe  # pylint: disable=g-import-not-at-top
  keys = golden_recipe.read_keys(os.path.join(REPO, 'tests/data/G_state_dict_keys.txt'))
  state = golden_recipe.make_state(keys, seed=20251125, conv_gain=golden_recipe.G_CONV_GAIN)
  g = MRRNet().eval()
  assert list(g.state_dict()) == [k for k, _ in keys], 'state_dict keys differ from the key list'
  g.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()}, strict=True)
  ref = np.load(os.path.join(REPO, 'tests/data/golden_G.npz'))
  with torch.no_grad():
    out = g(torch.from_numpy(ref['input'])).numpy()
  return float(np.max(np.abs(out - ref['output'])))


def _time(fn, iters, warmup):
  for _ in range(warmup):
    fn()
  times = []
  for _ in range(iters):
    t0 = time.perf_counter()
    fn()
    times.append(time.perf_counter() - t0)
  return statistics.median(times)


def bench(mode, phase, batch, iters, warmup):
  torch.manual_seed(0)
  g = MRRNet()
  for m in g.modules():  # the authors' init_weights (G only)
    if isinstance(m, nn.Conv2d):
      nn.init.normal_(m.weight, 0.0, 0.02)
      if m.bias is not None:
        nn.init.zeros_(m.bias)
  rng = np.random.default_rng(0)
  lr = torch.from_numpy(rng.uniform(-1, 1, (batch, 3, 128, 128)).astype(np.float32))
  hr = torch.from_numpy(rng.uniform(-1, 1, (batch, 3, 128, 128)).astype(np.float32))
  if mode == 'infer':
    g.eval()

    def fn():
      with torch.no_grad():
        g(lr)
  else:
    trainer = GanTrainer(g, Discriminator() if phase == 'gan' else None,
                         PerceptualLoss() if phase == 'gan' else None)
    fn = (lambda: trainer.l1_step(lr, hr)) if phase == 'l1' else (lambda: trainer.gan_step(lr, hr))
  step_s = _time(fn, iters, warmup)
  return {'impl': 'torch', 'mode': mode, 'phase': phase if mode == 'train' else 'infer',
          'batch': batch, 'images_per_s': batch / step_s, 'median_step_ms': step_s * 1e3,
          'threads': torch.get_num_threads(), 'torch': torch.__version__,
          'peak_memory_mb': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0}


def main():
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--mode', choices=('train', 'infer'), default='train')
  parser.add_argument('--phase', choices=('l1', 'gan'), default='l1')
  parser.add_argument('--batch', type=int, default=4)
  parser.add_argument('--iters', type=int, default=7)
  parser.add_argument('--warmup', type=int, default=2)
  parser.add_argument('--threads', type=int, default=2)
  parser.add_argument('--check', action='store_true', help='only check against golden_G.npz')
  args = parser.parse_args()
  torch.set_num_threads(args.threads)
  if args.check:
    diff = check_golden()
    print(json.dumps({'golden_G_max_abs_diff': diff, 'ok': diff < 1e-4}), flush=True)
    sys.exit(0 if diff < 1e-4 else 1)
  print(json.dumps(bench(args.mode, args.phase, args.batch, args.iters, args.warmup)), flush=True)


if __name__ == '__main__':
  main()
