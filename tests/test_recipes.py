"""The paper-recipe configs (configs/recipes/): figures, models, schedules, and their commands.

The paper's figures below are copied by hand from its Tables 1, 3 and 4, not
from the recipe files, so a typo on either side fails here.
"""
import ast
import importlib.util
import re
import shlex

from absl import flags
from ml_collections import config_flags
import pytest

from configs import ablation
from configs import recipes
from configs.recipes import _common as recipes_common

# The paper's tables (Huang et al., ICANN 2022), x8 on the DIC test pairs.
# Table 1: (data set, method) -> PSNR, SSIM, LPIPS.
TABLE1 = {
    ('CelebA', 'Bicubic'): (23.73, 0.6261, 0.5329),
    ('CelebA', 'MRRNet'): (27.27, 0.7873, 0.1921),
    ('CelebA', 'MRRGAN'): (26.64, 0.7632, 0.0930),
    ('Helen', 'Bicubic'): (24.04, 0.6743, 0.5253),
    ('Helen', 'MRRNet'): (26.86, 0.7912, 0.2038),
    ('Helen', 'MRRGAN'): (26.15, 0.7614, 0.0941),
}
# Table 3 (MRRGAN, attention kernel sets): column -> PSNR, SSIM.
TABLE3 = {'k{1,3}': (26.23, 0.7515), 'k{5,7}': (26.49, 0.7586), 'k{1,7}': (26.31, 0.7530),
          'k{1,3,5,7} (MRRGAN)': (26.64, 0.7632)}
# Table 4 (without the spatial attention): column -> PSNR, SSIM.
TABLE4 = {'MRRNet w/o SA': (26.83, 0.7585), 'MRRGAN w/o SA': (25.47, 0.7469),
          'MRRNet': (27.27, 0.7873), 'MRRGAN': (26.64, 0.7632)}


def _table1(data, method):
  (psnr, ssim, lpips), (b_psnr, b_ssim, b_lpips) = TABLE1[data, method], TABLE1[data, 'Bicubic']
  return {'psnr': psnr, 'ssim': ssim, 'lpips': lpips,
          'bicubic_psnr': b_psnr, 'bicubic_ssim': b_ssim, 'bicubic_lpips': b_lpips}


def _psnr_ssim(figures):
  return {'psnr': figures[0], 'ssim': figures[1]}


# Each recipe's PAPER, from the tables above.
PAPER = {
    'celeba_mrrnet': _table1('CelebA', 'MRRNet'),
    'celeba_mrrgan': _table1('CelebA', 'MRRGAN'),
    'helen_mrrnet': _table1('Helen', 'MRRNet'),
    'helen_mrrgan': _table1('Helen', 'MRRGAN'),
    'celeba_k13_mrrgan': _psnr_ssim(TABLE3['k{1,3}']),
    'celeba_k57_mrrgan': _psnr_ssim(TABLE3['k{5,7}']),
    'celeba_k17_mrrgan': _psnr_ssim(TABLE3['k{1,7}']),
    'celeba_nosa_mrrnet': _psnr_ssim(TABLE4['MRRNet w/o SA']),
    'celeba_nosa_mrrgan': _psnr_ssim(TABLE4['MRRGAN w/o SA']),
    'celeba_cbam_mrrnet': {},  # Fig. 4: qualitative, no figures.
}
RECIPES = list(PAPER)
# ml_collections loads config files with importlib's deprecated load_module().
pytestmark = pytest.mark.filterwarnings('ignore:the load_module:DeprecationWarning')
# The row each recipe's own config trains: phase, data, attention, kernels. The
# two-phase recipes' ':phase1' runs are checked against their row below.
MODELS = {
    'celeba_mrrnet': ('l1', 'celeba_face_sr', 'mrr', (1, 3, 5, 7)),
    'celeba_mrrgan': ('gan', 'celeba_face_sr', 'mrr', (1, 3, 5, 7)),
    'helen_mrrnet': ('l1', 'helen_face_sr', 'mrr', (1, 3, 5, 7)),
    'helen_mrrgan': ('gan', 'helen_face_sr', 'mrr', (1, 3, 5, 7)),
    'celeba_k13_mrrgan': ('gan', 'celeba_face_sr', 'mrr', (1, 3)),
    'celeba_k57_mrrgan': ('gan', 'celeba_face_sr', 'mrr', (5, 7)),
    'celeba_k17_mrrgan': ('gan', 'celeba_face_sr', 'mrr', (1, 7)),
    'celeba_nosa_mrrnet': ('l1', 'celeba_face_sr', 'none', (1, 3, 5, 7)),
    'celeba_nosa_mrrgan': ('gan', 'celeba_face_sr', 'none', (1, 3, 5, 7)),
    'celeba_cbam_mrrnet': ('l1', 'celeba_face_sr', 'cbam', (1, 3, 5, 7)),
}
DIC_TEST = {'celeba_face_sr': '/data/CelebA_test_DIC', 'helen_face_sr': '/data/Helen_test_DIC'}
CLIS = ('mrr_jax.main', 'mrr_jax.export', 'mrr_jax.evaluate')


def _load(name):
  return recipes.load(name)


def _config_path(spec):
  """NAME[:ARG] as the --config value that loads it."""
  name, colon, arg = spec.partition(':')
  return f'configs/recipes/{name}.py{colon}{arg}'


def _config(spec):
  """A recipe's config as --config configs/recipes/NAME.py[:ARG] builds it."""
  name, _, arg = spec.partition(':')
  module = _load(name)
  return module.get_config(arg) if arg else module.get_config()


# ------------------------------------------------------------------ the figures


def test_every_recipe_is_listed_once_and_tested():
  assert sorted(recipes.RECIPES) == sorted(RECIPES)
  assert len(set(recipes.RECIPES)) == len(recipes.RECIPES)


@pytest.mark.parametrize('name', RECIPES)
def test_paper_figures_are_the_papers(name):
  module = _load(name)
  assert module.PAPER == PAPER[name]
  assert all(v is not None for v in module.PAPER.values())
  for key, value in module.PAPER.items():  # the docstring quotes each figure
    digits = 2 if key.endswith('psnr') else 4
    assert f'{value:.{digits}f}' in module.__doc__, f'{name}: {key} {value} not in the docstring'


def test_table_rows_carry_the_figures_of_their_table():
  want_rows = [
      ('Table 1', 'MRRNet', 'CelebA', 'celeba_mrrnet'),
      ('Table 1', 'MRRGAN', 'CelebA', 'celeba_mrrgan'),
      ('Table 1', 'MRRNet', 'Helen', 'helen_mrrnet'),
      ('Table 1', 'MRRGAN', 'Helen', 'helen_mrrgan'),
      ('Table 3', 'k{1,3}', 'CelebA', 'celeba_k13_mrrgan'),
      ('Table 3', 'k{5,7}', 'CelebA', 'celeba_k57_mrrgan'),
      ('Table 3', 'k{1,7}', 'CelebA', 'celeba_k17_mrrgan'),
      ('Table 3', 'k{1,3,5,7} (MRRGAN)', 'CelebA', 'celeba_mrrgan'),
      ('Table 4', 'MRRNet w/o SA', 'CelebA', 'celeba_nosa_mrrnet'),
      ('Table 4', 'MRRGAN w/o SA', 'CelebA', 'celeba_nosa_mrrgan'),
      ('Table 4', 'MRRNet', 'CelebA', 'celeba_mrrnet'),
      ('Table 4', 'MRRGAN', 'CelebA', 'celeba_mrrgan'),
      ('Fig. 4', 'MRR-CBAM (attention maps)', 'CelebA', 'celeba_cbam_mrrnet'),
  ]
  rows = recipes.rows()
  assert [(r['table'], r['row'], r['dataset'], r['recipe']) for r in rows] == [
      (t, row, d, f'configs/recipes/{n}.py') for t, row, d, n in want_rows]
  for r in rows:
    if r['table'] == 'Table 1':
      want = dict(zip(('psnr', 'ssim', 'lpips'), TABLE1[r['dataset'], r['row']]))
    elif r['table'] == 'Table 3':
      want = _psnr_ssim(TABLE3[r['row']])
    elif r['table'] == 'Table 4':
      want = _psnr_ssim(TABLE4[r['row']])
    else:
      want = {}
    assert r['paper'] == want, r


def test_markdown_table_has_a_line_per_row():
  lines = recipes.markdown().splitlines()
  assert len(lines) == 2 + len(recipes.TABLE)
  assert ('| Table 1 | MRRGAN | Helen | `configs/recipes/helen_mrrgan.py` | '
          '26.15 / 0.7614 / 0.0941 |') in lines
  assert ('| Table 3 | k{5,7} | CelebA | `configs/recipes/celeba_k57_mrrgan.py` | '
          '26.49 / 0.7586 / - |') in lines
  assert lines[-1].endswith('| qualitative (no figures) |')


def test_tables_3_and_4_reference_columns_are_table_1s_celeba_rows():
  """The paper's own consistency, on which the recipes' choice of CelebA rests."""
  assert TABLE3['k{1,3,5,7} (MRRGAN)'] == TABLE1['CelebA', 'MRRGAN'][:2]
  assert TABLE3['k{1,3,5,7} (MRRGAN)'] != TABLE1['Helen', 'MRRGAN'][:2]
  assert TABLE4['MRRNet'] == TABLE1['CelebA', 'MRRNet'][:2]
  assert TABLE4['MRRGAN'] == TABLE1['CelebA', 'MRRGAN'][:2]
  for name in ('celeba_k13_mrrgan', 'celeba_nosa_mrrnet', 'celeba_nosa_mrrgan'):
    doc = _load(name).__doc__
    assert 'Helen' in doc and 'CelebA' in doc  # each says which and why


# ------------------------------------------------------------------ models and schedules


@pytest.mark.parametrize('name', RECIPES)
def test_recipe_model_is_its_rows(name):
  phase, data, attention, kernels = MODELS[name]
  config = _load(name).get_config()
  assert (config.phase, config.data.name, config.model.attention) == (phase, data, attention)
  assert tuple(config.model.att_kernels) == kernels
  assert _load(name).DATASET == data


@pytest.mark.parametrize('name', [n for n in RECIPES if MODELS[n][0] == 'gan'])
def test_gan_recipes_start_from_an_l1_run_of_the_same_model(name):
  module = _load(name)
  gan, phase1 = module.get_config(), _config(module.PHASE1)
  assert phase1.phase == 'l1'
  assert phase1.model.to_dict() == gan.model.to_dict()
  assert phase1.data.name == gan.data.name
  # The GAN run's init_from is the workdir of the one command that trains PHASE1.
  trains = [c for c in _commands(_load(module.PHASE1.partition(':')[0]).__doc__)
            if c.module == 'mrr_jax.main' and c.flags['config'] == _config_path(module.PHASE1)]
  assert len(trains) == 1, f'{name}: no single command trains {module.PHASE1}'
  (gan_train,) = [c for c in _commands(module.__doc__) if c.module == 'mrr_jax.main'
                  and c.flags['config'] == _config_path(name)]
  assert gan_train.flags['config.init_from'] == trains[0].flags['workdir']
  assert 'config.vgg_weights' in gan_train.flags


@pytest.mark.parametrize('name', ['celeba_k13_mrrgan', 'celeba_k57_mrrgan', 'celeba_k17_mrrgan'])
def test_table3_phase_one_has_the_rows_kernels(name):
  config = _load(name).get_config('phase1')
  assert config.phase == 'l1' and tuple(config.model.att_kernels) == MODELS[name][3]
  with pytest.raises(ValueError, match='phase1'):
    _load(name).get_config('phase2')


@pytest.mark.parametrize('name', RECIPES)
def test_recipe_model_matches_configs_ablation(name):
  """A recipe's ablation builds the model configs/ablation.py:NAME builds."""
  variant = getattr(_load(name), 'VARIANT', '')
  if not variant:
    return
  assert _load(name).get_config().model.to_dict() == ablation.get_config(variant).model.to_dict()


def test_ablation_arguments_still_work():
  for arg, (attention, kernels) in {'k13': ('mrr', (1, 3)), 'k57': ('mrr', (5, 7)),
                                    'k17': ('mrr', (1, 7)), 'nosa': ('none', (1, 3, 5, 7)),
                                    'cbam': ('cbam', (1, 3, 5, 7))}.items():
    config = ablation.get_config(arg)
    assert config.phase == 'l1' and config.model.attention == attention
    assert tuple(config.model.att_kernels) == kernels
  combined = ablation.get_config('k13+tiny+helen')
  assert tuple(combined.model.att_kernels) == (1, 3) and combined.data.name == 'helen_face_sr'
  assert combined.model.base_channels == 8
  with pytest.raises(ValueError, match='exactly one'):
    ablation.get_config('k13+k57')


# 20 epochs at batch 12: ceil(162770 / 12) = 13565 steps per epoch; ceil(2000 / 12) = 167.
STEPS = {'celeba_face_sr': (271_300, 54_260), 'helen_face_sr': (3_340, 668)}


# At batch 16: ceil(162770 / 16) = ceil(10173.1) = 10174 (20 epochs 203,480, decay every 40,696);
# ceil(2000 / 16) = 125 (2,500 and 500).
STEPS_AT_16 = {'celeba_face_sr': (203_480, 40_696), 'helen_face_sr': (2_500, 500)}


@pytest.mark.parametrize('name', RECIPES)
def test_recipe_schedule(name):
  config = _load(name).get_config()
  steps, decay = STEPS[config.data.name]
  assert config.batch_size == 12 and config.num_epochs == 20
  assert config.num_train_steps == 0 and config.lr_decay_every_steps == 0  # from epochs
  assert recipes_common.schedule_steps(config) == (steps, decay)
  assert str(steps) in _load(name).__doc__.replace(',', '')  # the docstring states the count
  config.batch_size = 16  # still 20 epochs, decay every 4
  assert recipes_common.schedule_steps(config) == STEPS_AT_16[config.data.name]
  config.num_train_steps = 1234  # an override wins
  assert recipes_common.schedule_steps(config)[0] == 1234


# ------------------------------------------------------------------ the commands


class Command:
  """One `python -m MODULE --flag value ...` line of a docstring, flags as a dict."""

  def __init__(self, text):
    tokens = shlex.split(text)
    assert tokens[:2] == ['python', '-m'], text
    self.text, self.module, self.flags, self.argv = text, tokens[2], {}, tokens[3:]
    i = 3
    while i < len(tokens):
      token = tokens[i]
      assert token.startswith('--'), f'not a flag: {token!r} in {text}'
      name, eq, value = token[2:].partition('=')
      if not eq and i + 1 < len(tokens) and not tokens[i + 1].startswith('--'):
        value, i = tokens[i + 1], i + 1
      assert name not in self.flags, f'--{name} given twice in {text}'
      self.flags[name] = value
      i += 1


def _commands(doc):
  """Every command in a docstring (continuation lines joined)."""
  joined = re.sub(r'\\\n\s*', ' ', doc)
  return [Command(line.strip()) for line in joined.splitlines()
          if line.strip().startswith('python -m ')]


def _module_flag_names(module):
  """Flags a CLI module defines (DEFINE_* calls in it and in the mrr_jax modules it imports)."""
  spec = importlib.util.find_spec(module)
  assert spec is not None and spec.origin, f'{module} does not exist'
  names, sources = set(), [spec.origin]
  tree = ast.parse(open(spec.origin).read())
  for node in ast.walk(tree):
    if isinstance(node, ast.ImportFrom) and (node.module or '').startswith('mrr_jax'):
      for alias in node.names:
        sub = importlib.util.find_spec(f'{node.module}.{alias.name}')
        if sub is not None and sub.origin and sub.origin.endswith('.py'):
          sources.append(sub.origin)
  for source in sources:
    for node in ast.walk(ast.parse(open(source).read())):
      if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
          and node.func.attr.startswith('DEFINE') and node.args
          and isinstance(node.args[0], ast.Constant)):
        names.add(node.args[0].value)
  return names


_FLAG_NAMES = {}


def _flag_names(module):
  if module not in _FLAG_NAMES:
    _FLAG_NAMES[module] = _module_flag_names(module)
  return _FLAG_NAMES[module]


def _parse_config_flags(command):
  """--config and every --config.KEY parsed as mrr_jax.main parses them (keys and types)."""
  argv = ['main', '--config', command.flags['config']] + [
      f'--{k}={v}' for k, v in command.flags.items() if k.startswith('config.')]
  fv = flags.FlagValues()
  # sys_argv: config_flags finds the overrides to define in the argv, not sys.argv.
  config_flags.DEFINE_config_file('config', None, 'recipe', flag_values=fv, lock_config=True,
                                  sys_argv=argv)
  fv(argv)
  return fv.config


ALL_COMMANDS = [(name, i) for name in RECIPES for i in range(len(_commands(_load(name).__doc__)))]


@pytest.mark.parametrize('name', RECIPES)
def test_recipe_trains_exports_and_evaluates_its_own_run(name):
  commands = _commands(_load(name).__doc__)
  trains = [c.flags['workdir'] for c in commands
            if c.module == 'mrr_jax.main' and c.flags['config'] == _config_path(name)]
  assert trains == [f'runs/{name}']
  exports = [c.flags for c in commands if c.module == 'mrr_jax.export']
  assert {'workdir': f'runs/{name}', 'output': f'exports/{name}'} in exports
  assert f'exports/{name}' in [c.flags['model'] for c in commands if c.module == 'mrr_jax.evaluate']


@pytest.mark.parametrize('name, index', ALL_COMMANDS)
def test_command_uses_only_flags_and_keys_that_exist(name, index):
  command = _commands(_load(name).__doc__)[index]
  assert command.module in CLIS, command.text
  defined = _flag_names(command.module)
  for flag in command.flags:
    if not flag.startswith('config.'):
      assert flag in defined, f'{name}: {command.module} has no --{flag}'
  if command.module == 'mrr_jax.main':
    assert {'config', 'workdir'} <= set(command.flags)
    config = _parse_config_flags(command)  # raises on an unknown key or a bad value
    for flag, value in command.flags.items():
      if flag.startswith('config.'):
        node = config
        for part in flag.split('.')[1:]:
          node = node[part]
        assert str(node) == value, f'{name}: --{flag} did not reach the config'
  else:
    assert not any(f.startswith('config') for f in command.flags), command.text


@pytest.mark.parametrize('name', RECIPES)
def test_commands_use_the_dic_test_pairs_of_the_recipes_data(name):
  module = _load(name)
  root = DIC_TEST[module.DATASET]
  for command in _commands(module.__doc__):
    if command.module == 'mrr_jax.main':
      assert command.flags['config.data.eval_hr_dir'] == f'{root}/HR'
      assert command.flags['config.data.eval_lr_dir'] == f'{root}/LR'
    if command.module == 'mrr_jax.evaluate':
      assert (command.flags['hr_dir'], command.flags['lr_dir']) == (f'{root}/HR', f'{root}/LR')
      # LPIPS flags exactly where the paper reports LPIPS, both or neither.
      wants_lpips = 'lpips' in module.PAPER
      assert ('lpips_backbone' in command.flags) == wants_lpips, command.text
      assert ('lpips_linear' in command.flags) == wants_lpips, command.text


def test_fig4_recipe_writes_attention_maps():
  module = _load('celeba_cbam_mrrnet')
  assert module.PAPER == {} and 'qualitative' in module.__doc__.lower()
  assert 'attention.png' in module.__doc__
  saves = [c for c in _commands(module.__doc__) if c.module == 'mrr_jax.evaluate']
  models = {c.flags['model'] for c in saves}
  assert models == {'exports/celeba_cbam_mrrnet', 'exports/celeba_mrrnet'}
  assert all('save_dir' in c.flags for c in saves)


def test_flag_scan_sees_the_clis_flags():
  """The AST scan finds what the CLIs define (so a missing flag is a real miss)."""
  assert {'workdir', 'config'} <= _flag_names('mrr_jax.main')
  assert {'workdir', 'output'} <= _flag_names('mrr_jax.export')
  assert {'model', 'hr_dir', 'lr_dir', 'lpips_backbone', 'lpips_linear', 'save_dir',
          'json', 'num_pictures'} <= _flag_names('mrr_jax.evaluate')
  assert 'lr_dirr' not in _flag_names('mrr_jax.evaluate')


def test_config_parse_refuses_unknown_keys_and_bad_values():
  head = 'python -m mrr_jax.main --config configs/recipes/celeba_mrrnet.py --workdir runs/x '
  with pytest.raises(AttributeError, match='eval_hr_dirr'):
    _parse_config_flags(Command(head + '--config.data.eval_hr_dirr=/x'))
  with pytest.raises(flags.IllegalFlagValueError, match='num_train_steps'):
    _parse_config_flags(Command(head + '--config.num_train_steps=many'))
