"""Input pipeline: LR synthesis vs PIL, augmentation, determinism, sharding, resume, eval."""
import json
import os

import numpy as np
from PIL import Image
import pytest

from configs import default
from mrr_jax.data import throughput
from mrr_jax.data import degradations, pipeline, resize, sources, transforms
from tests.batches import assert_same, take, to_u8
from tests import face_fakes

LFW_DEV = '/work/shared/data/lfw_dev'


def _pil_degrade(hr):
  lr = Image.fromarray(hr).resize((16, 16), Image.BICUBIC)
  return np.asarray(lr), np.asarray(lr.resize((128, 128), Image.BICUBIC))


def _max_diff(a, b):
  return int(np.abs(np.asarray(a, np.int64) - np.asarray(b, np.int64)).max())


def test_to_float_golden():
  np.testing.assert_array_equal(degradations.to_float(np.array([0, 255, 51], np.uint8)),
                                np.array([-1.0, 1.0, -0.6], np.float32))


def test_degrade_matches_pil_bicubic_on_photos():
  for seed in range(4):
    hr = face_fakes.smooth_photo(seed, 128, 128)
    lr = degradations.make_lr(hr)
    inp = degradations.upsample_lr(lr)
    ref_lr, ref_inp = _pil_degrade(hr)
    assert lr.shape == (16, 16, 3) and inp.shape == (128, 128, 3)
    assert _max_diff(lr, ref_lr) <= 1 and _max_diff(inp, ref_inp) <= 1
    np.testing.assert_array_equal(degradations.upsample_lr(lr), inp)
    # Antialiased: the LR is near the 8x8 box mean, not a point sample.
    box = hr.reshape(16, 8, 16, 8, 3).mean((1, 3))
    assert np.abs(lr - box).mean() < 3.0


@pytest.mark.skipif(not os.path.isdir(LFW_DEV), reason=f'{LFW_DEV} absent (dev data only)')
def test_degrade_matches_pil_bicubic_on_lfw():
  people = sorted(os.listdir(LFW_DEV))[:20]
  for person in people:
    name = sorted(os.listdir(os.path.join(LFW_DEV, person)))[0]
    img = Image.open(os.path.join(LFW_DEV, person, name)).convert('RGB')
    hr = np.asarray(img.crop((50, 50, 200, 200)).resize((128, 128), Image.BICUBIC))
    lr = degradations.make_lr(hr)
    inp = degradations.upsample_lr(lr)
    ref_lr, ref_inp = _pil_degrade(hr)
    assert _max_diff(lr, ref_lr) <= 1 and _max_diff(inp, ref_inp) <= 1


@pytest.mark.parametrize('in_size,out_size', [(16, 128), (128, 16), (37, 100), (100, 37)])
def test_pil_bicubic_batch_is_pil_bit_for_bit(in_size, out_size):
  shape = (in_size, in_size, 3)
  images = [np.random.default_rng(seed).integers(0, 256, shape, np.uint8) for seed in range(3)]
  binary = np.random.default_rng(3).integers(0, 2, shape, np.uint8) * 255
  yy, xx = np.indices(shape[:2])
  checker = np.repeat(((yy + xx) % 2 * 255).astype(np.uint8)[..., None], 3, axis=-1)
  stripes = np.repeat((xx // 3 % 2 * 255).astype(np.uint8)[..., None], 3, axis=-1)
  # 0/255 patterns make the bicubic overshoot, so the clipping to [0, 255] counts.
  images += [binary, checker, stripes, stripes.transpose(1, 0, 2),
             np.zeros(shape, np.uint8), np.full(shape, 255, np.uint8)]
  ref = [np.asarray(Image.fromarray(x).resize((out_size, out_size), Image.BICUBIC))
         for x in images]
  np.testing.assert_array_equal(resize.pil_bicubic_batch(np.stack(images), out_size), np.stack(ref))


def test_augment_identity_flip_and_zoom_out():
  hr = face_fakes.smooth_photo(0, 128, 128)
  rng = np.random.default_rng(0)
  np.testing.assert_array_equal(transforms.augment(hr, rng, (1.0, 1.0), flip=False), hr)
  outs = [transforms.augment(hr, rng, (1.0, 1.0), flip=True) for _ in range(20)]
  flipped = sum(np.array_equal(o, hr[:, ::-1]) for o in outs)
  assert flipped + sum(np.array_equal(o, hr) for o in outs) == 20 and 0 < flipped < 20
  # s = 0.5: a 64x64 bilinear shrink centred on black.
  out = transforms.augment(hr, rng, (0.5, 0.5), flip=False)
  small = np.asarray(Image.fromarray(hr).resize((64, 64), Image.BILINEAR))
  np.testing.assert_array_equal(out[32:96, 32:96], small)
  assert out[:32].max() == 0 and out[96:].max() == 0 and out[:, :32].max() == 0


def test_random_resized_crop_box_ranges():
  rng = np.random.default_rng(1)
  for _ in range(200):
    x0, y0, x1, y1 = transforms.random_resized_crop_box(rng, 128, 128, (0.7, 1.0))
    w, h = x1 - x0, y1 - y0
    assert 0 <= x0 and 0 <= y0 and x1 <= 128 and y1 <= 128
    assert 0.68 <= w * h / 128 ** 2 <= 1.0
    assert 0.74 <= w / h <= 1.35


@pytest.fixture(scope='module')
def faces(tmp_path_factory):
  """A config on a 22-image folder (ids 0..21 drawn in pixel (0, 0) of the HR)."""
  root = tmp_path_factory.mktemp('faces')
  for i in range(22):
    img = face_fakes.smooth_photo(i, 128, 128)
    img[:4, :4] = i * 10
    face_fakes.write(str(root / 'img' / f'{i:02d}.png'), face_fakes.encode(img, 'PNG'))
  for i in range(5):
    face_fakes.write(str(root / 'pairs' / 'HR' / f'{i}.png'),
                     face_fakes.encode(face_fakes.smooth_photo(100 + i, 128, 128), 'PNG'))
    face_fakes.write(str(root / 'pairs' / 'LR' / f'{i}.png'),
                     face_fakes.encode(face_fakes.smooth_photo(200 + i, 16, 16), 'PNG'))
  config = default.get_config()
  config.data.train_dir = str(root / 'img')
  config.data.data_dir = str(root / 'tfds')
  config.data.eval_hr_dir = str(root / 'pairs' / 'HR')
  config.data.eval_lr_dir = str(root / 'pairs' / 'LR')
  return config


def test_train_batches_shapes_and_lr_is_pil_of_hr(faces):
  batch = next(pipeline.create_train_iterator(faces.data, 4, seed=0))
  assert {k: (v.shape, v.dtype) for k, v in batch.items()} == {
      'input': ((4, 128, 128, 3), np.float32), 'hr': ((4, 128, 128, 3), np.float32),
      'lr': ((4, 16, 16, 3), np.float32)}
  assert batch['hr'].min() >= -1.0 and batch['hr'].max() <= 1.0
  for hr, lr, inp in zip(to_u8(batch['hr']), to_u8(batch['lr']), to_u8(batch['input'])):
    ref_lr, ref_inp = _pil_degrade(hr.astype(np.uint8))
    assert _max_diff(lr, ref_lr) <= 1 and _max_diff(inp, ref_inp) <= 1
    np.testing.assert_array_equal(inp, degradations.upsample_lr(lr.astype(np.uint8)))


def test_same_seed_same_batches_other_seed_differs(faces):
  a = take(pipeline.create_train_iterator(faces.data, 4, seed=3), 3)
  b = take(pipeline.create_train_iterator(faces.data, 4, seed=3), 3)
  c = take(pipeline.create_train_iterator(faces.data, 4, seed=4), 3)
  assert_same(a, b)
  assert not np.array_equal(a[0]['hr'], c[0]['hr'])


def test_process_shards_are_disjoint_and_cover(faces):
  src = sources.FaceSource(sources._train_builder(faces.data), 'train')
  ident = lambda ds, i: int(to_u8(ds[i]['hr'])[0, 0, 0, 0]) // 10
  shards = [pipeline.train_dataset(src, 1, seed=0, scale_range=(1.0, 1.0), flip=False,
                             process_index=p, process_count=2) for p in range(2)]
  ids = [[ident(ds, i) for i in range(11)] for ds in shards]
  assert set(ids[0]).isdisjoint(ids[1]) and set(ids[0]) | set(ids[1]) == set(range(22))
  # Two processes together see the single-process order: batch i of process p
  # is global batch 2 i + p.
  single = pipeline.train_dataset(src, 1, seed=0, scale_range=(1.0, 1.0), flip=False)
  order = [ident(single, i) for i in range(44)]
  assert [x for pair in zip(ids[0], ids[1]) for x in pair] == order[:22]
  # Epoch 2 revisits every image in a new order.
  assert sorted(order[22:]) == list(range(22)) and order[22:] != order[:22]


def test_resume_gives_the_uninterrupted_batches(faces):
  whole = take(pipeline.create_train_iterator(faces.data, 4, seed=7, process_index=1,
                                         process_count=2), 8)
  it = pipeline.create_train_iterator(faces.data, 4, seed=7, process_index=1, process_count=2)
  first = take(it, 3)
  state = json.loads(json.dumps(it.get_state()))
  resumed = pipeline.create_train_iterator(faces.data, 4, seed=7, process_index=1, process_count=2)
  resumed.set_state(state)
  assert_same(first + take(resumed, 5), whole)
  assert [b['hr'].shape[0] for b in whole] == [2] * 8


def test_steps_per_epoch(faces):
  assert sources.num_train_examples(faces.data) == 22
  # ceil(22 / 4): an epoch counts the short last batch, as the authors' DataLoader does.
  assert sources.steps_per_epoch(faces.data, 4) == 6
  assert sources.steps_per_epoch(faces.data, 11) == 2


def test_eval_examples_pair_by_name_in_order(faces):
  examples = sources.eval_examples(faces.data)
  assert [ex.name for ex in examples] == ['0', '1', '2', '3', '4']
  np.testing.assert_array_equal(examples[0].lr, face_fakes.smooth_photo(200, 16, 16))
  np.testing.assert_array_equal(examples[0].hr, face_fakes.smooth_photo(100, 128, 128))
  # Each process takes every P-th image (train.loop): disjoint, and together all of them.
  shares = [[ex.name for ex in examples[p::2]] for p in range(2)]
  assert shares == [['0', '2', '4'], ['1', '3']]


def test_eval_without_lr_degrades_hr_and_caps(faces):
  cfg = faces.data.copy_and_resolve_references()
  cfg.eval_lr_dir = ''
  cfg.eval_max_images = 3
  examples = sources.eval_examples(cfg)
  assert [ex.name for ex in examples] == ['0', '1', '2']
  hr = face_fakes.smooth_photo(101, 128, 128)
  np.testing.assert_array_equal(examples[1].hr, hr)
  np.testing.assert_array_equal(examples[1].lr, degradations.make_lr(hr))


def test_benchmark_reports_its_keys(faces):
  config = default.get_config()
  config.data = faces.data
  config.batch_size = 4
  result = throughput.benchmark_input(config, warmup_batches=1, timed_batches=2)
  assert result['mode'] == 'input' and result['batch'] == 4 and result['batches'] == 2
  assert result['images_per_s'] > 0
  # Two batches can take less CPU time than the clock's 10 ms tick: then no per-core figure.
  if result['cores'] is None:
    assert result['images_per_s_per_core'] is None
  else:
    rounding = 0.005 / result['cores']  # cores is reported to 2 decimals
    assert result['images_per_s_per_core'] == pytest.approx(
        result['images_per_s'] / result['cores'], rel=0.01 + rounding)
