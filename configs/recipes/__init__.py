"""One config per figure of the paper we target: Tables 1, 3 and 4 and Fig. 4 (x8).

Each recipe module's docstring is the recipe: the commands (train, export,
evaluate), its data, the steps and hardware, and the paper's figures, which
`PAPER` holds (psnr, ssim, lpips where the paper reports LPIPS, and the
bicubic row where the table has one). A recipe whose row is an MRRGAN names in
`PHASE1` the config whose run its generator starts from. `TABLE` lists every
row with its recipe; `rows()` and `markdown()` join them with the figures, for
README's table.
"""
import importlib
from typing import Any, Dict, List

# (table or figure, row or column as the paper labels it, recipe), in the paper's
# order. Rows whose figures repeat another table's point to the same recipe.
TABLE = (
    ('Table 1', 'MRRNet', 'celeba_mrrnet'),
    ('Table 1', 'MRRGAN', 'celeba_mrrgan'),
    ('Table 1', 'MRRNet', 'helen_mrrnet'),
    ('Table 1', 'MRRGAN', 'helen_mrrgan'),
    ('Table 3', 'k{1,3}', 'celeba_k13_mrrgan'),
    ('Table 3', 'k{5,7}', 'celeba_k57_mrrgan'),
    ('Table 3', 'k{1,7}', 'celeba_k17_mrrgan'),
    ('Table 3', 'k{1,3,5,7} (MRRGAN)', 'celeba_mrrgan'),
    ('Table 4', 'MRRNet w/o SA', 'celeba_nosa_mrrnet'),
    ('Table 4', 'MRRGAN w/o SA', 'celeba_nosa_mrrgan'),
    ('Table 4', 'MRRNet', 'celeba_mrrnet'),
    ('Table 4', 'MRRGAN', 'celeba_mrrgan'),
    ('Fig. 4', 'MRR-CBAM (attention maps)', 'celeba_cbam_mrrnet'),
)
RECIPES = tuple(dict.fromkeys(name for _, _, name in TABLE))
# What each table reports: a recipe's PAPER may hold more (Table 3's MRRGAN column
# is Table 1's row, whose LPIPS Table 3 does not repeat).
REPORTED = {'Table 1': ('psnr', 'ssim', 'lpips'), 'Table 3': ('psnr', 'ssim'),
            'Table 4': ('psnr', 'ssim'), 'Fig. 4': ()}
DATASET_NAMES = {'celeba_face_sr': 'CelebA', 'helen_face_sr': 'Helen'}


def load(name: str):
  """The recipe module configs/recipes/NAME.py."""
  return importlib.import_module(f'{__name__}.{name}')


def rows() -> List[Dict[str, Any]]:
  """TABLE with each recipe's file, data set and the figures that table reports."""
  out = []
  for table, row, name in TABLE:
    module = load(name)
    paper = {k: module.PAPER[k] for k in REPORTED[table] if k in module.PAPER}
    out.append({'table': table, 'row': row, 'recipe': f'configs/recipes/{name}.py',
                'dataset': DATASET_NAMES[module.DATASET], 'paper': paper})
  return out


def _cell(paper: Dict[str, float], key: str, digits: int) -> str:
  return f'{paper[key]:.{digits}f}' if key in paper else '-'


def markdown() -> str:
  """README's table: table/figure, row, data set, recipe, the paper's PSNR/SSIM/LPIPS."""
  lines = ['| table | row | data | recipe | paper PSNR / SSIM / LPIPS |',
           '|---|---|---|---|---|']
  for r in rows():
    p = r['paper']
    figures = (' / '.join((_cell(p, 'psnr', 2), _cell(p, 'ssim', 4), _cell(p, 'lpips', 4)))
               if p else 'qualitative (no figures)')
    lines.append(f"| {r['table']} | {r['row']} | {r['dataset']} | `{r['recipe']}` | {figures} |")
  return '\n'.join(lines)
