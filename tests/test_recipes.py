"""The paper-recipe configs (configs/recipes/): schedules and the commands in their docstrings."""
import importlib
import re

import pytest

RECIPES = ['celeba_mrrnet', 'celeba_mrrgan', 'helen_mrrnet', 'helen_mrrgan']


def _load(name):
  return importlib.import_module(f'configs.recipes.{name}')


@pytest.mark.parametrize('name,phase,data,steps,decay', [
    # 20 epochs at batch 12: ceil(162770 / 12) = 13565 steps per epoch; ceil(2000 / 12) = 167.
    ('celeba_mrrnet', 'l1', 'celeba_face_sr', 271_300, 54_260),
    ('celeba_mrrgan', 'gan', 'celeba_face_sr', 271_300, 54_260),
    ('helen_mrrnet', 'l1', 'helen_face_sr', 3_340, 668),
    ('helen_mrrgan', 'gan', 'helen_face_sr', 3_340, 668),
])
def test_recipe_schedule(name, phase, data, steps, decay):
  config = _load(name).get_config()
  assert (config.phase, config.data.name, config.batch_size) == (phase, data, 12)
  assert (config.num_train_steps, config.lr_decay_every_steps) == (steps, decay)
  assert str(steps) in _load(name).__doc__.replace(',', '')  # the docstring states the count


@pytest.mark.parametrize('name', RECIPES)
def test_recipe_commands_name_the_file_and_valid_keys(name):
  module = _load(name)
  doc, config = module.__doc__, module.get_config()
  assert f'--config configs/recipes/{name}.py --workdir runs/{name}' in doc
  assert f'--workdir runs/{name} --output exports/{name}' in doc
  assert f'--model exports/{name}' in doc
  for key in re.findall(r'--config\.([\w.]+)=', doc):
    node = config
    for part in key.split('.'):
      assert part in node, f'{name}: --config.{key} is not a config key'
      node = node[part]


def test_gan_recipes_start_from_their_phase_one_run():
  for data in ('celeba', 'helen'):
    assert f'--config.init_from=runs/{data}_mrrnet' in _load(f'{data}_mrrgan').__doc__

