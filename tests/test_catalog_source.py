"""Training on a TFDS catalog dataset (lfw) through tfds.testing.mock_data.

mock_data fakes tfds.builder('lfw') (its real features: 'image' (250, 250, 3)
uint8, 'label' text), makes download_and_prepare a no-op and serves 8 random
images from as_data_source, the same images to every reader.
"""
import json

import numpy as np
from PIL import Image
import pytest
import requests
import tensorflow_datasets as tfds

from configs import default
from mrr_jax.data import degradations, pipeline, sources
from tests.batches import assert_same, take, to_u8

N = 8
BOX = (50, 50, 200, 200)


@pytest.fixture
def lfw(tmp_path):
  """A data config for lfw with LFW's face box, inside tfds's mock of lfw."""
  config = default.get_config().data
  config.name = 'lfw'
  config.data_dir = str(tmp_path / 'tfds')
  config.crop_box = ','.join(map(str, BOX))
  with tfds.testing.mock_data(num_examples=N, policy=tfds.testing.MockPolicy.USE_CODE):
    yield config


def _mocked_images(config):
  source = tfds.builder('lfw', data_dir=config.data_dir).as_data_source('train')
  return [source[i]['image'] for i in range(N)]


def _no_augmentation(config):
  config.scale_range = (1.0, 1.0)
  config.flip = False
  return config


def test_an_epoch_is_every_image_cropped_by_the_box(lfw):
  images = _mocked_images(lfw)
  assert images[0].shape == (250, 250, 3) and images[0].dtype == np.uint8
  # The box is square here: crop it, PIL bicubic 150 -> 128.
  expected = [np.asarray(Image.fromarray(im).crop(BOX).resize((128, 128), Image.BICUBIC))
              for im in images]
  batches = take(pipeline.create_train_iterator(_no_augmentation(lfw), 4, seed=0), 2)
  assert {k: (v.shape, v.dtype) for k, v in batches[0].items()} == {
      'input': ((4, 128, 128, 3), np.float32), 'hr': ((4, 128, 128, 3), np.float32),
      'lr': ((4, 16, 16, 3), np.float32)}
  hrs = [hr for b in batches for hr in to_u8(b['hr'])]
  order = [next(i for i, e in enumerate(expected) if np.array_equal(hr, e)) for hr in hrs]
  assert sorted(order) == list(range(N))
  for b in batches:
    for hr, lr, inp in zip(to_u8(b['hr']), to_u8(b['lr']), to_u8(b['input'])):
      ref_lr = degradations.make_lr(hr)
      ref_inp = degradations.upsample_lr(ref_lr)
      np.testing.assert_array_equal(lr, ref_lr)
      np.testing.assert_array_equal(inp, ref_inp)


def test_a_wide_box_is_cut_to_its_centred_square(lfw):
  lfw.crop_box = '30,50,230,200'        # 200 x 150: the square is x 55..205.
  image = _mocked_images(lfw)[5]
  expected = np.asarray(Image.fromarray(image).crop((55, 50, 205, 200))
                        .resize((128, 128), Image.BICUBIC))
  np.testing.assert_array_equal(sources.train_source(lfw)[5]['hr'], expected)


def test_no_box_takes_the_whole_image(lfw):
  lfw.crop_box = ''
  image = _mocked_images(lfw)[2]
  expected = np.asarray(Image.fromarray(image).resize((128, 128), Image.BICUBIC))
  np.testing.assert_array_equal(sources.train_source(lfw)[2]['hr'], expected)


def test_same_crops_as_the_face_folder_builder(tmp_path):
  """The same photos through face_folder (built from PNG files) give identical HR."""
  with tfds.testing.mock_data(num_examples=N, policy=tfds.testing.MockPolicy.USE_CODE):
    config = default.get_config().data
    config.name, config.crop_box = 'lfw', '50,50,200,200'
    images = _mocked_images(config)
    catalog = [sources.train_source(config)[i]['hr'] for i in range(N)]
  folder = tmp_path / 'photos'
  folder.mkdir()
  for i, im in enumerate(images):
    Image.fromarray(im).save(folder / f'{i}.png')
  config.train_dir, config.data_dir = str(folder), str(tmp_path / 'tfds')
  built = sources.train_source(config)
  assert isinstance(built, sources.FaceSource) and len(built) == N
  for i in range(N):
    np.testing.assert_array_equal(built[i]['hr'], catalog[i])


def test_same_seed_same_batches_other_seed_differs(lfw):
  a = take(pipeline.create_train_iterator(lfw, 4, seed=3), 3)
  b = take(pipeline.create_train_iterator(lfw, 4, seed=3), 3)
  c = take(pipeline.create_train_iterator(lfw, 4, seed=4), 3)
  assert_same(a, b)
  assert not np.array_equal(a[0]['hr'], c[0]['hr'])


def test_resume_gives_the_uninterrupted_batches(lfw):
  whole = take(pipeline.create_train_iterator(lfw, 2, seed=7), 6)
  it = pipeline.create_train_iterator(lfw, 2, seed=7)
  first = take(it, 2)
  state = json.loads(json.dumps(it.get_state()))
  resumed = pipeline.create_train_iterator(lfw, 2, seed=7)
  resumed.set_state(state)
  assert_same(first + take(resumed, 4), whole)


def test_steps_per_epoch(lfw):
  assert sources.num_train_examples(lfw) == N
  assert sources.steps_per_epoch(lfw, 4) == 2


def test_wrong_image_key_names_the_features(lfw):
  lfw.image_key = 'label'
  with pytest.raises(ValueError, match=r"'lfw' feature 'label' is .* not an RGB uint8 image"):
    pipeline.create_train_iterator(lfw, 4, seed=0)
  lfw.image_key = 'photo'
  with pytest.raises(ValueError, match=r"'lfw' has no feature 'photo' .*'image', 'label'"):
    pipeline.create_train_iterator(lfw, 4, seed=0)


def test_box_outside_the_images_is_refused_up_front(lfw):
  lfw.crop_box = '50,50,260,200'
  with pytest.raises(ValueError, match=r'crop_box \(50, 50, 260, 200\) lies outside the 250x250'):
    pipeline.create_train_iterator(lfw, 4, seed=0)


def test_eval_on_a_catalog_dataset_asks_for_a_test_folder(lfw):
  with pytest.raises(ValueError, match="'lfw' is used for training only: set data.eval_hr_dir"):
    sources.eval_examples(lfw)


def test_no_internet_names_the_dataset_and_the_way_out(tmp_path, monkeypatch):
  """The real lfw builder, unprepared; its download fails as it does offline."""
  def offline(self, **unused_kwargs):
    raise requests.exceptions.ConnectionError(
        "Failed to resolve 'ndownloader.figshare.com' (Name or service not known)")
  monkeypatch.setattr(tfds.core.DatasetBuilder, 'download_and_prepare', offline)
  config = default.get_config().data
  config.name, config.data_dir = 'lfw', str(tmp_path / 'tfds')
  with pytest.raises(ValueError) as e:
    pipeline.create_train_iterator(config, 4, seed=0)
  msg = str(e.value)
  assert "TFDS dataset 'lfw' is not prepared" in msg and str(tmp_path / 'tfds') in msg
  assert 'needs internet' in msg and 'figshare' in msg and 'tfds build lfw' in msg


def test_our_builders_are_not_catalog_datasets():
  assert not sources._is_catalog(tfds.builder('face_folder'))
  assert not sources._is_catalog(tfds.builder('celeba_face_sr'))
  assert sources._is_catalog(tfds.builder('lfw'))
