"""Odd files are skipped and listed; data problems end in one line, not a traceback.

A folder being built may hold symlink loops, dangling links, names that are
not UTF-8, FIFOs, empty and corrupt files: each is counted, named and skipped.
An empty or missing folder, too many bad files and no data configured at all
are each a bad_files.DataError (a ValueError) with a one-line message, from the
pipeline, from TFDS's own download_and_prepare and from `python -m
mrr_jax.main`, and leave no prepared data set behind.
"""
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from typing import Dict
import zipfile

import pytest
import tensorflow as tf

tf.config.set_visible_devices([], 'GPU')
import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top

from configs import default  # pylint: disable=g-import-not-at-top
from mrr_jax.data import pairs, sources
from mrr_jax.data import bad_files, files, images
from mrr_jax.data.builders import face_folder
from tests import face_fakes

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _permissions_apply() -> bool:
  """Whether a mode-0 file is unreadable here (not so for root or CAP_DAC_OVERRIDE)."""
  fd, path = tempfile.mkstemp()
  os.close(fd)
  os.chmod(path, 0)
  try:
    with open(path, 'rb'):
      return False
  except PermissionError:
    return True
  finally:
    os.remove(path)


PERMISSIONS_APPLY = _permissions_apply()
NO_DATA = ("no training data: set --config.data.train_dir=DIR (a folder of face photos) or "
           "--config.data.manual_dir=DIR holding CelebA's downloads (img_align_celeba.zip, "
           'list_landmarks_align_celeba.txt, list_eval_partition.txt) '
           'for data.name=celeba_face_sr')


def _unlock(root) -> None:
  """Gives back the permissions _odd_entries took, so that the folder can be removed."""
  for folder, dirs, files in os.walk(root):
    for name in dirs + files:
      path = os.path.join(folder, name)
      if not os.path.islink(path) and not os.stat(path).st_mode & 0o700:
        os.chmod(path, 0o700)
        if os.path.isdir(path):
          _unlock(path)


@pytest.fixture(autouse=True)
def unlocked_tmp_path(tmp_path):
  yield
  _unlock(tmp_path)


@pytest.fixture(autouse=True)
def no_hang():
  """Fails a test that blocks (e.g. by opening a FIFO) instead of hanging the suite."""
  def timeout(signum, frame):
    del signum, frame
    raise TimeoutError('blocked for 300 s: was a FIFO opened?')
  previous = signal.signal(signal.SIGALRM, timeout)
  signal.alarm(300)
  yield
  signal.alarm(0)
  signal.signal(signal.SIGALRM, previous)


def _png(seed: int, size: int = 48) -> bytes:
  return face_fakes.encode(face_fakes.smooth_photo(seed, size, size), 'PNG')


def _photos(folder: str, n: int, size: int = 48):
  """n good images 000.png ... in folder; returns their names."""
  names = [f'{i:03d}.png' for i in range(n)]
  for i, name in enumerate(names):
    face_fakes.write(os.path.join(folder, name), _png(i, size))
  return names


def _non_utf8_file(folder: str) -> None:
  """bad\\xff.png: a good PNG whose name is not UTF-8."""
  fd = os.open(os.path.join(os.fsencode(folder), b'bad\xff.png'),
               os.O_WRONLY | os.O_CREAT, 0o644)
  os.write(fd, _png(99))
  os.close(fd)


def _odd_entries(folder: str) -> Dict[str, str]:
  """One entry of each bad kind in folder: {name as listed: a phrase of its reason}."""
  os.makedirs(folder, exist_ok=True)
  os.symlink('loop.png', os.path.join(folder, 'loop.png'))
  os.symlink('nowhere.png', os.path.join(folder, 'dangling.png'))
  _non_utf8_file(folder)
  face_fakes.write(os.path.join(folder, 'empty.png'), b'')
  os.mkfifo(os.path.join(folder, 'pipe.png'))
  face_fakes.write(os.path.join(folder, 'corrupt.jpg'), face_fakes.CORRUPT)
  expected = {'loop.png': 'symbolic link loop',
              'dangling.png': 'dangling symbolic link to nowhere.png',
              'bad\\xff.png': 'file name is not valid UTF-8',
              'empty.png': 'empty file (0 bytes)',
              'pipe.png': 'not a regular file (a FIFO)',
              'corrupt.jpg': 'not a recognised image file'}
  if PERMISSIONS_APPLY:  # root reads whatever the permissions say
    face_fakes.write(os.path.join(folder, 'locked.png'), _png(98))
    os.chmod(os.path.join(folder, 'locked.png'), 0)
    os.makedirs(os.path.join(folder, 'locked_dir'))
    face_fakes.write(os.path.join(folder, 'locked_dir', 'x.png'), _png(97))
    os.chmod(os.path.join(folder, 'locked_dir'), 0)
    expected['locked.png'] = 'permission denied'
    expected['locked_dir'] = 'cannot list the folder: permission denied'
  return expected


def _reasons(bad):
  return {b['file']: b['reason'] for b in bad}


def _assert_reasons(bad, expected):
  reasons = _reasons(bad)
  assert sorted(reasons) == sorted(expected), reasons
  for name, phrase in expected.items():
    assert phrase in reasons[name], (name, reasons[name])


def _data_config(tmp_path, **overrides):
  config = default.get_config().data
  config.data_dir = str(tmp_path / 'tfds')
  for key, value in overrides.items():
    config[key] = value
  return config


def _nothing_prepared(data_dir) -> None:
  """No data set (dataset_info.json) anywhere under data_dir, nor a temporary build."""
  for folder, dirs, files in os.walk(data_dir):
    assert 'dataset_info.json' not in files, folder
    assert not [d for d in dirs if 'incomplete' in d], (folder, dirs)


def _one_line(message: str, *parts: str) -> None:
  assert '\n' not in message, message
  for part in parts:
    assert part in message, (part, message)


# ---------------------------------------------------------------- names and reasons


def test_display_name_escapes_what_is_not_printable_utf8():
  assert bad_files.display_name('bad\udcff.png') == 'bad\\xff.png'
  assert bad_files.display_name('two\nlines\t.png') == 'two\\nlines\\t.png'
  assert bad_files.display_name('José/李.png') == 'José/李.png'
  assert bad_files.is_utf8('José.png') and not bad_files.is_utf8('bad\udcff.png')


def test_read_file_refuses_special_files_without_opening_them(tmp_path):
  os.mkfifo(tmp_path / 'pipe.png')
  with pytest.raises(bad_files.BadImageError, match=r'not a regular file \(a FIFO\)'):
    files.read_file(str(tmp_path / 'pipe.png'))
  with pytest.raises(bad_files.BadImageError, match=r'not a regular file \(a directory\)'):
    files.read_file(str(tmp_path))
  with pytest.raises(bad_files.BadImageError, match='empty file'):
    images.load_rgb(b'')


def test_zip_members_that_cannot_be_read_are_bad_files(tmp_path):
  path = str(tmp_path / 'faces.zip')
  with zipfile.ZipFile(path, 'w', zipfile.ZIP_STORED) as z:
    z.writestr('good.png', _png(0))
    z.writestr('flipped.png', _png(1))
  data = bytearray(open(path, 'rb').read())
  at = data.rindex(_png(1)[-20:])    # inside flipped.png's stored bytes
  data[at] ^= 0xFF
  open(path, 'wb').write(bytes(data))
  source = files.FileSource(path)
  assert images.load_rgb(source.read('good.png')).shape == (48, 48, 3)
  with pytest.raises(bad_files.BadImageError, match='cannot read from faces.zip: BadZipFile'):
    source.read('flipped.png')
  source.close()
  face_fakes.write(str(tmp_path / 'not.zip'), b'not a zip')
  with pytest.raises(bad_files.DataError, match='is neither a folder nor a zip file'):
    files.FileSource(str(tmp_path / 'not.zip'))


# ---------------------------------------------------------------- builds that skip


def test_odd_entries_are_skipped_and_listed_tfds_api(tmp_path):
  root = str(tmp_path / 'faces')
  good = _photos(os.path.join(root, 'people'), 20)
  expected = _odd_entries(os.path.join(root, 'odd'))
  config = face_folder.config_for(root, None)
  builder = tfds.builder('face_folder', data_dir=str(tmp_path / 'tfds'), config=config,
                         max_bad_fraction=0.5)
  builder.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=root))
  assert builder.info.splits['train'].num_examples == len(good) == 20
  built = [e['name'].decode() for e in builder.as_data_source('train')]
  assert built == [f'people/{n}' for n in good]
  _assert_reasons(builder.info.metadata['bad_files']['train'],
                  {f'odd/{n}': reason for n, reason in expected.items()})
  # The report is stored (as UTF-8 JSON) and survives reloading.
  again = tfds.builder('face_folder', data_dir=str(tmp_path / 'tfds'), config=config)
  assert again.is_prepared()
  assert _reasons(again.info.metadata['bad_files']['train']) == _reasons(
      builder.info.metadata['bad_files']['train'])


@pytest.mark.parametrize('odd', ['symlink_loop', 'non_utf8_name'])
def test_one_odd_file_among_150_images_is_one_skipped_file(tmp_path, odd):
  root = str(tmp_path / 'faces')
  _photos(root, 150)
  if odd == 'symlink_loop':
    os.symlink('loop.png', os.path.join(root, 'loop.png'))
  else:
    _non_utf8_file(root)
  data = _data_config(tmp_path, train_dir=root)
  assert sources.num_train_examples(data) == 150
  bad = sources._train_builder(data).info.metadata['bad_files']['train']
  assert [b['file'] for b in bad] == ['loop.png' if odd == 'symlink_loop' else 'bad\\xff.png']


def test_paired_folders_skip_odd_entries(tmp_path, monkeypatch, caplog):
  hr, lr = str(tmp_path / 'HR'), str(tmp_path / 'LR')
  for i in range(4):
    face_fakes.write(os.path.join(hr, f'{i}.png'), _png(i, 128))
    face_fakes.write(os.path.join(lr, f'{i}.png'), _png(10 + i, 16))
  expected = _odd_entries(hr)
  os.remove(os.path.join(lr, '3.png'))
  os.mkfifo(os.path.join(lr, '3.png'))
  expected['3.png'] = 'not a regular file (a FIFO)'    # its LR
  expected.pop('locked_dir', None)                      # the HR folder is not walked
  # The default 1% would need hundreds of pairs around these few bad ones.
  with caplog.at_level('WARNING'):
    examples, _ = pairs.load_pairs(hr, lr, max_bad_fraction=0.9)
  assert [e.name for e in examples] == ['0', '1', '2']
  log = caplog.text
  for name, phrase in expected.items():
    assert f'{name}: ' in log and phrase in log, (name, log)
  builder = tfds.builder('paired_face_folder', data_dir=str(tmp_path / 'tfds'),
                         max_bad_fraction=0.9)
  os.makedirs(tmp_path / 'pairs')
  os.symlink(hr, tmp_path / 'pairs' / 'HR')
  os.symlink(lr, tmp_path / 'pairs' / 'LR')
  builder.download_and_prepare(
      download_config=tfds.download.DownloadConfig(manual_dir=str(tmp_path / 'pairs')))
  assert builder.info.splits['test'].num_examples == 3
  _assert_reasons(builder.info.metadata['bad_files']['test'], expected)


# ---------------------------------------------------------------- one-line errors


def _empty(root):
  os.makedirs(root)
  return ['is empty']


def _missing(root):
  return ['does not exist']


def _no_images(root):
  face_fakes.write(os.path.join(root, 'notes.txt'), b'no images here')
  return ['no face images in', 'none of its 1 file has an image extension']


def _too_many_bad(root):
  _photos(root, 5)
  _odd_entries(os.path.join(root, 'odd'))
  total = 5 + (8 if PERMISSIONS_APPLY else 6)
  return [f'train: {total - 5} of {total} files are bad', 'more than the allowed 1%',
          'odd/dangling.png: dangling symbolic link to nowhere.png']


@pytest.mark.parametrize('case', [_empty, _missing, _no_images, _too_many_bad])
def test_train_folder_problems_are_one_line(tmp_path, case):
  root = str(tmp_path / 'faces')
  parts = case(root)
  data = _data_config(tmp_path, train_dir=root)
  with pytest.raises(bad_files.DataError) as e:
    sources.num_train_examples(data)
  _one_line(str(e.value), root, *parts)
  _nothing_prepared(data.data_dir)
  config = face_folder.config_for(root, None)
  assert not tfds.builder('face_folder', data_dir=data.data_dir, config=config).is_prepared()
  # TFDS's own API raises the same error.
  builder = tfds.builder('face_folder', data_dir=data.data_dir, config=config)
  with pytest.raises(bad_files.DataError) as again:
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(manual_dir=root))
  assert str(again.value) == str(e.value)


def test_a_failed_build_is_rebuilt_once_fixed(tmp_path):
  root = str(tmp_path / 'faces')
  _too_many_bad(root)
  data = _data_config(tmp_path, train_dir=root)
  with pytest.raises(bad_files.TooManyBadFilesError):
    sources.num_train_examples(data)
  _unlock(root)
  shutil.rmtree(os.path.join(root, 'odd'))
  assert sources.num_train_examples(data) == 5


def test_no_data_configured_names_the_keys(tmp_path):
  data = _data_config(tmp_path)
  with pytest.raises(bad_files.DataError) as e:
    sources.num_train_examples(data)
  assert str(e.value) == NO_DATA
  with pytest.raises(bad_files.DataError) as e:
    sources.eval_examples(data)
  _one_line(str(e.value), 'no evaluation data', '--config.data.eval_hr_dir=DIR',
            '--config.data.manual_dir=DIR', '--config.eval_every_steps=0')
  _nothing_prepared(data.data_dir)


def test_a_missing_manual_dir_is_named(tmp_path):
  data = _data_config(tmp_path, manual_dir=str(tmp_path / 'celeba'))
  with pytest.raises(bad_files.ManualDirError) as e:
    sources.num_train_examples(data)
  _one_line(str(e.value), str(tmp_path / 'celeba'), 'does not exist', 'img_align_celeba.zip')


@pytest.mark.parametrize('case', ['missing', 'empty', 'too_many_bad'])
def test_eval_folder_problems_are_one_line(tmp_path, case):
  hr = str(tmp_path / 'HR')
  if case == 'empty':
    os.makedirs(hr)
  elif case == 'too_many_bad':
    _photos(hr, 3, 128)
    _odd_entries(hr)
  with pytest.raises(bad_files.DataError) as e:
    sources.eval_examples(_data_config(tmp_path, eval_hr_dir=hr))
  parts = {'missing': ['HR folder', 'does not exist', '--config.data.eval_hr_dir=DIR'],
           'empty': ['no HR images in', 'the folder is empty'],
           'too_many_bad': ['eval: ', 'files are bad', 'more than the allowed 1%']}[case]
  _one_line(str(e.value), hr, *parts)


def test_data_errors_come_out_of_tfds_wrappers(tmp_path, monkeypatch):
  """TFDS re-raises some errors as RuntimeError('X: <prefix><message>') from the original."""
  def wrapped(self, dl_manager):
    del self, dl_manager
    try:
      raise bad_files.DataError('the one line')
    except bad_files.DataError as e:
      tfds.core.utils.reraise(e, prefix='Failed to encode example:\n{...}\n')
  monkeypatch.setattr(face_folder.FaceFolder, '_split_generators', wrapped)
  root = str(tmp_path / 'faces')
  _photos(root, 1)
  builder = tfds.builder('face_folder', data_dir=str(tmp_path / 'tfds'),
                         config=face_folder.config_for(root, None))
  with pytest.raises(bad_files.DataError) as e:
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=root))
  assert str(e.value) == 'the one line'
  _nothing_prepared(tmp_path / 'tfds')


# ---------------------------------------------------------------- the command line


def test_tryit_without_data_is_one_error_line(tmp_path):
  """README's try-it command without --config.data.train_dir: exit 1, one line."""
  workdir, data_dir = tmp_path / 'W', tmp_path / 'D'
  args = [sys.executable, '-m', 'mrr_jax.main', '--config', 'configs/tryit.py',
          '--workdir', str(workdir), f'--config.data.data_dir={data_dir}']
  proc = subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=600)
  assert proc.returncode == 1, proc.stderr[-3000:]
  assert proc.stderr.strip().splitlines()[-1] == f'error: {NO_DATA}', proc.stderr[-3000:]
  assert 'Traceback' not in proc.stderr, proc.stderr[-3000:]
  _nothing_prepared(data_dir)
  # At most what the trainer writes before it opens the data: its config,
  # an empty event file and empty folders; no checkpoint, no data.
  for folder, dirs, files in os.walk(workdir):
    for f in files:
      assert f == 'config.json' or f.startswith('events.out.tfevents.'), (folder, f)
      if f.startswith('events.out.tfevents.'):
        assert os.path.getsize(os.path.join(folder, f)) < 1000
    assert folder == str(workdir) or not files, (folder, files)
