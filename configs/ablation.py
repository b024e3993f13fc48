r"""The paper's ablations of the attention (phase 1, L1), one config argument each.

  k13, k57, k17   multiscale attention with kernels (1,3), (5,7), (1,7)
  nosa            w/o SA: no spatial attention
  cbam            MRR-CBAM: CBAM in place of the multiscale attention
Combinable with the shared variants, e.g. 'k13+tiny' or 'cbam+helen':
  python -m mrr_jax.main --config configs/ablation.py:k13 --workdir runs/ablation_k13

These are phase-1 runs with the default schedule. The paper's Table 3 rows are
MRRGANs (phase 1 with the kernel set, then phase 2 from it) and Table 4 has a
w/o SA model of each phase: configs/recipes/ (celeba_k13_mrrgan.py,
celeba_nosa_mrrnet.py, celeba_nosa_mrrgan.py, celeba_cbam_mrrnet.py, ...) gives
both phases with the paper's schedule and figures, building the models from
ABLATIONS below.
"""
from configs import default, variants

ABLATIONS = {
    'k13': dict(att_kernels=(1, 3)),
    'k57': dict(att_kernels=(5, 7)),
    'k17': dict(att_kernels=(1, 7)),
    'nosa': dict(attention='none'),
    'cbam': dict(attention='cbam'),
}


def get_config(arg: str):
  parts = [p for p in arg.split('+') if p]
  chosen = [p for p in parts if p in ABLATIONS]
  if len(chosen) != 1:
    raise ValueError(f'configs/ablation.py needs exactly one of {sorted(ABLATIONS)}, got {arg!r}')
  config = default.get_config()
  config.phase = 'l1'
  config.model.update(ABLATIONS[chosen[0]])
  return variants.apply(config, '+'.join(p for p in parts if p not in ABLATIONS))
