"""The face-SR TFDS builders on small fake data in each source's real layout."""
import os

import numpy as np
import pytest
import tensorflow as tf

tf.config.set_visible_devices([], 'GPU')
import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top

from mrr_jax.data.builders import celeba_face_sr  # pylint: disable=g-import-not-at-top
from mrr_jax.data import bad_files, crops, images
from mrr_jax.data.builders import face_folder
from mrr_jax.data.builders import helen_face_sr
from tests import face_fakes

# Landmarks of an aligned CelebA face: eyes (70,110),(110,110), nose, mouth (75,150),(105,150).
CELEBA_MARKS = [70, 110, 110, 110, 90, 130, 75, 150, 105, 150]


def _build(name, data_dir, manual_dir, config=None, **kwargs):
  builder = tfds.builder(name, data_dir=str(data_dir), config=config, **kwargs)
  builder.download_and_prepare(
      download_config=tfds.download.DownloadConfig(manual_dir=str(manual_dir)))
  return builder


def _all(builder, split):
  return list(builder.as_data_source(split))


def test_landmark_box_by_hand():
  # e=(90,110), m=(90,150), d=40: side 140, centre (90, 130 - 4) -> (20, 56, 160, 196).
  marks = np.asarray(CELEBA_MARKS, np.float64).reshape(5, 2)
  assert celeba_face_sr.face_box(marks, 178, 218) == (20, 56, 160, 196)
  # Near the top edge the square moves down; wider than the image it shrinks.
  assert crops.square_box(50, 10, 60, 178, 218) == (20, 0, 80, 60)
  assert crops.square_box(89, 109, 300, 178, 218) == (0, 20, 178, 198)


def _celeba_files():
  photos = {f'{i:06d}.jpg': face_fakes.smooth_photo(i, 178, 218) for i in range(1, 11)}
  files = {n: face_fakes.encode(p) for n, p in photos.items()}
  files['000003.jpg'] = face_fakes.encode(photos['000003.jpg'], mode='L')      # grey: converted
  files['000004.jpg'] = face_fakes.encode(photos['000004.jpg'], mode='CMYK')   # CMYK: converted
  files['000005.jpg'] = face_fakes.encode(photos['000005.jpg'], 'PNG', 'RGBA')  # RGBA: converted
  files['000009.jpg'] = face_fakes.CORRUPT
  files['000010.jpg'] = face_fakes.truncated(photos['000010.jpg'])
  partition = {f'{i:06d}.jpg': p for i, p in zip(range(1, 12), [0] * 6 + [1, 2, 0, 2, 2])}
  marks = {n: CELEBA_MARKS for n in partition}
  return photos, files, partition, marks   # 000011.jpg is listed but absent.


def test_celeba_builder(tmp_path):
  photos, files, partition, marks = _celeba_files()
  face_fakes.celeba(str(tmp_path / 'manual'), files, partition, marks)
  b = _build('celeba_face_sr', tmp_path / 'data', tmp_path / 'manual', max_bad_fraction=0.7)
  counts = {s: b.info.splits[s].num_examples for s in ('train', 'validation', 'test')}
  assert counts == {'train': 6, 'validation': 1, 'test': 1}
  train = _all(b, 'train')
  assert [e['name'] for e in train] == [f'{i:06d}.jpg'.encode() for i in range(1, 7)]
  assert all(e['hr'].shape == (128, 128, 3) and e['hr'].dtype == np.uint8 for e in train)
  # The crop is the landmark box of the decoded JPEG resized to 128 (bit-exact).
  decoded = images.load_rgb(files['000001.jpg'])
  np.testing.assert_array_equal(train[0]['hr'],
                                crops.crop_resize(decoded, (20, 56, 160, 196)))
  grey = train[2]['hr']
  np.testing.assert_array_equal(grey[..., 0], grey[..., 2])
  bad = b.info.metadata['bad_files']
  assert [x['file'] for x in bad['train']] == ['000009.jpg']
  assert [x['file'] for x in bad['test']] == ['000010.jpg', '000011.jpg']
  assert 'not a recognised image' in bad['train'][0]['reason']
  assert 'cannot decode' in bad['test'][0]['reason']
  assert 'not among the images' in bad['test'][1]['reason']
  assert bad['validation'] == []
  # The report survives reloading the built dataset.
  again = tfds.builder('celeba_face_sr', data_dir=str(tmp_path / 'data'))
  assert [x['file'] for x in again.info.metadata['bad_files']['test']] == [
      '000010.jpg', '000011.jpg']


def test_celeba_too_many_bad_files_raises(tmp_path):
  _, files, partition, marks = _celeba_files()
  face_fakes.celeba(str(tmp_path / 'manual'), files, partition, marks)
  with pytest.raises(bad_files.TooManyBadFilesError, match=r'train: 1 of 7 files are bad'):
    _build('celeba_face_sr', tmp_path / 'data', tmp_path / 'manual')


def test_celeba_missing_file_message(tmp_path):
  _, files, partition, marks = _celeba_files()
  face_fakes.celeba(str(tmp_path / 'manual'), files, partition, marks)
  os.remove(tmp_path / 'manual' / 'list_eval_partition.txt')
  with pytest.raises(bad_files.MissingDataError, match=r'list_eval_partition\.txt.*CelebA page'):
    _build('celeba_face_sr', tmp_path / 'data', tmp_path / 'manual')


def test_helen_builder(tmp_path):
  names = [f'10000{i}_1' for i in range(6)]
  photos = {n: face_fakes.smooth_photo(i, 300, 260) for i, n in enumerate(names)}
  jpgs = {n + '.jpg': face_fakes.encode(p) for n, p in photos.items()}
  jpgs['100004_1.jpg'] = face_fakes.CORRUPT
  zips = {'helen_1.zip': {k: jpgs[k] for k in list(jpgs)[:4]},
          'helen_5.zip': {k: jpgs[k] for k in list(jpgs)[4:]}}
  points = {n: face_fakes.helen_points(eye_y=100, mouth_y=160, cx=140) for n in names}
  face_fakes.helen(str(tmp_path / 'manual'), zips, points,
                   train=names[:4] + ['999_1'], test=names[4:])
  b = _build('helen_face_sr', tmp_path / 'data', tmp_path / 'manual', max_bad_fraction=0.6)
  assert b.info.splits['train'].num_examples == 4
  assert b.info.splits['test'].num_examples == 1
  bad = b.info.metadata['bad_files']
  assert [x['file'] for x in bad['train']] == ['999_1']
  assert [x['file'] for x in bad['test']] == ['100004_1']
  # e=(140,100), m=(140,160), d=60: side 210 centred (140, 124) -> (35, 19, 245, 229).
  box = helen_face_sr.face_box(points[names[0]], 300, 260)
  assert box == (35, 19, 245, 229)
  first = _all(b, 'train')[0]
  assert first['name'] == names[0].encode()
  np.testing.assert_array_equal(
      first['hr'], crops.crop_resize(images.load_rgb(jpgs[names[0] + '.jpg']), box))


def test_helen_train_split_leaves_out_the_test_faces_by_content(tmp_path):
  """Renamed, re-encoded copies of two train crops in manual/exclude/ drop those two faces."""
  names = [f'20000{i}_1' for i in range(7)]
  photos = {n: face_fakes.smooth_photo(50 + i, 300, 260) for i, n in enumerate(names)}
  points = {n: face_fakes.helen_points(eye_y=100, mouth_y=160, cx=140) for n in names}
  face_fakes.helen(str(tmp_path / 'manual'),
                   {'helen_1.zip': {n + '.jpg': face_fakes.encode(p) for n, p in photos.items()}},
                   points, train=names[:6], test=names[6:])
  names = names[:6]
  box = helen_face_sr.face_box(points[names[0]], 300, 260)
  for i, planted in enumerate((names[1], names[4])):  # the DIC set renumbers its crops
    crop = crops.crop_resize(images.load_rgb(face_fakes.encode(photos[planted])), box)
    face_fakes.write(str(tmp_path / 'manual' / 'exclude' / f'{i:03d}.png'),
                     face_fakes.encode(crop, 'JPEG'))
  unrelated = face_fakes.smooth_photo(99, 128, 128)  # a test face not in the train list
  face_fakes.write(str(tmp_path / 'manual' / 'exclude' / '002.png'),
                   face_fakes.encode(unrelated, 'PNG'))
  b = _build('helen_face_sr', tmp_path / 'data', tmp_path / 'manual')
  kept = [x['name'].decode() for x in _all(b, 'train')]
  assert sorted(kept) == sorted(set(names) - {names[1], names[4]})
  assert sorted(b.info.metadata['excluded']) == sorted([names[1], names[4]])


def test_perceptual_hash_tells_copies_from_other_faces():
  from mrr_jax.data import dedup  # pylint: disable=g-import-not-at-top
  faces = [face_fakes.smooth_photo(70 + i, 128, 128) for i in range(12)]
  hashes = [dedup.perceptual_hash(f) for f in faces]
  for f, h in zip(faces, hashes):
    jpeg = images.load_rgb(face_fakes.encode(f, 'JPEG'))
    assert dedup.distance(h, dedup.perceptual_hash(jpeg)) <= 4
  others = [dedup.distance(a, b) for i, a in enumerate(hashes) for b in hashes[i + 1:]]
  assert min(others) > dedup.MAX_DISTANCE, sorted(others)[:5]
  assert dedup.distance(0b1011, 0b0110) == 3  # by hand


def test_face_folder_builder(tmp_path):
  root = tmp_path / 'faces'
  for i in range(5):
    face_fakes.write(str(root / 'a' / f'{i}.png'),
                     face_fakes.encode(face_fakes.smooth_photo(i, 100, 100), 'PNG'))
  face_fakes.write(str(root / 'b' / 'grey.png'),
                   face_fakes.encode(face_fakes.smooth_photo(9, 100, 100), 'PNG', 'L'))
  face_fakes.write(str(root / 'b' / 'tiny.png'),
                   face_fakes.encode(face_fakes.smooth_photo(9, 20, 20), 'PNG'))
  face_fakes.write(str(root / 'b' / 'broken.jpg'), face_fakes.CORRUPT)
  face_fakes.write(str(root / 'notes.txt'), b'not an image, not counted')
  config = face_folder.config_for(str(root), (10, 10, 90, 90))
  b = _build('face_folder', tmp_path / 'data', root, config=config, max_bad_fraction=0.3)
  examples = _all(b, 'train')
  assert [e['name'].decode() for e in examples] == [
      'a/0.png', 'a/1.png', 'a/2.png', 'a/3.png', 'a/4.png', 'b/grey.png']
  bad = b.info.metadata['bad_files']['train']
  assert [x['file'] for x in bad] == ['b/broken.jpg', 'b/tiny.png']
  assert 'outside' in bad[1]['reason']
  expected = crops.crop_resize(face_fakes.smooth_photo(0, 100, 100), (10, 10, 90, 90))
  np.testing.assert_array_equal(examples[0]['hr'], expected)
  # The config name keys the cache on folder and box.
  assert config.name != face_folder.config_for(str(root), None).name


def test_paired_folder_builder_keeps_pairs_as_given(tmp_path):
  root = tmp_path / 'pairs'
  hrs = {f'{i}.png': face_fakes.smooth_photo(i, 128, 128) for i in range(4)}
  lrs = {n: face_fakes.smooth_photo(10 + i, 16, 16) for i, n in enumerate(hrs)}
  for n in hrs:
    face_fakes.write(str(root / 'HR' / n), face_fakes.encode(hrs[n], 'PNG'))
    if n != '2.png':
      face_fakes.write(str(root / 'LR' / n), face_fakes.encode(lrs[n], 'PNG'))
  face_fakes.write(str(root / 'HR' / 'big.png'),
                   face_fakes.encode(face_fakes.smooth_photo(5, 130, 130), 'PNG'))
  face_fakes.write(str(root / 'LR' / 'big.png'), face_fakes.encode(lrs['0.png'], 'PNG'))
  b = _build('paired_face_folder', tmp_path / 'data', root, max_bad_fraction=0.5)
  examples = _all(b, 'test')
  assert [e['name'] for e in examples] == [b'0.png', b'1.png', b'3.png']
  for e in examples:
    n = e['name'].decode()
    np.testing.assert_array_equal(e['hr'], hrs[n])
    np.testing.assert_array_equal(e['lr'], lrs[n])
  bad = b.info.metadata['bad_files']['test']
  assert [x['file'] for x in bad] == ['2.png', 'big.png']
  assert 'no LR image' in bad[0]['reason'] and '130x130, not 128x128' in bad[1]['reason']
