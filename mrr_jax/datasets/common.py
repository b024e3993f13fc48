"""What the face-SR TFDS builders share: image loading, the landmark box, bad-file policy.

Every builder stores `hr` as raw uint8 (128, 128, 3) rather than PNG: decoding a
128x128 PNG costs more than the whole training augmentation, and the input
pipeline must feed >= 1,000 images/s per core. The price is disk space
(49,152 bytes per image; CelebA's 202,599 images take about 10 GB).

Bad inputs never abort a build on their own: a file that cannot be read (a
symlink loop or dangling symlink, a name that is not UTF-8, no permission, a
FIFO or other special file, which is never opened), is empty, cannot be decoded,
is truncated, or whose crop is too small is skipped, listed in the build log and
in `builder.info.metadata['bad_files'][split]` (names with backslash escapes
for what is not printable UTF-8); other modes (L, LA, P, RGBA, CMYK, I;16) are
converted to RGB. A split where more than `max_bad_fraction` (default 1%) of
the files are bad raises `TooManyBadFilesError`, naming the folder and counts.

What the user must fix (too many bad files, a missing or empty folder) is a
`DataError`: a ValueError whose message is one line, raised as itself from
`download_and_prepare` even where TFDS wraps it. A failed build leaves no
prepared data set: TFDS writes into a temporary directory that it removes.
"""
import abc
import errno
import io
import math
import os
import stat
import zipfile
import zlib
from typing import Callable, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

from absl import logging
import numpy as np
from PIL import Image
import tensorflow_datasets as tfds

HR_SIZE = 128
LR_SIZE = 16
MIN_CROP_SIDE = 32          # a face crop under 32 px is no 128x128 ground truth.
DEFAULT_MAX_BAD_FRACTION = 0.01
IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.webp', '.tif', '.tiff', '.ppm')

# CelebA and Helen share one box rule (see landmark_box).
BOX_SIDE_PER_EYE_MOUTH = 3.5
BOX_CENTRE_UP_PER_EYE_MOUTH = 0.1

Box = Tuple[int, int, int, int]


class BadImageError(ValueError):
  """One input image that cannot be used; the message is the reason."""


def one_line(text: str) -> str:
  """text with every run of whitespace (newlines included) as one space."""
  return ' '.join(str(text).split())


class DataError(ValueError):
  """Input data the user must fix; str() is one line saying what and where.

  str() is overridden so that TFDS, when it re-raises an exception from a
  build, wraps this one (as its cause) instead of editing its message in place.
  """

  def __init__(self, message: str):
    super().__init__(message)
    self.message = one_line(message)

  def __str__(self) -> str:
    return self.message


class TooManyBadFilesError(DataError):
  """More bad files in a split than the stated fraction allows."""


class MissingDataError(DataError):
  """A file or folder a build needs is not there."""


class ManualDirError(MissingDataError):
  """The manual dir itself is missing or empty: likely nothing was configured."""


def missing_file_error(path: str, what: str, source: str) -> MissingDataError:
  """A MissingDataError that says which file, where it goes and where to get it."""
  return MissingDataError(
      f'Missing {what}: expected at {path}. {source} '
      'Put it there (or point data.manual_dir / --manual_dir at the folder holding it).')


def find_data_error(error: Optional[BaseException]) -> Optional[DataError]:
  """The first DataError along error's causes and contexts, or None.

  TFDS re-raises some exceptions from a build as a RuntimeError whose cause is
  the original; this finds ours under such wrappers.
  """
  seen = set()
  while error is not None and id(error) not in seen:
    if isinstance(error, DataError):
      return error
    seen.add(id(error))
    error = error.__cause__ or error.__context__
  return None


def display_name(name: str) -> str:
  """A file name safe to print and to store as UTF-8 text.

  Bytes that are not UTF-8 (os.listdir gives them as lone surrogates) show as
  \\xNN, and unprintable characters (newlines, controls) as Python escapes.
  """
  text = name.encode('utf-8', 'surrogateescape').decode('utf-8', 'backslashreplace')
  return ''.join(c if c.isprintable() else ascii(c)[1:-1] for c in text)


def is_utf8(name: str) -> bool:
  """Whether name encodes to UTF-8 (TFDS stores the name feature so)."""
  try:
    name.encode('utf-8')
  except UnicodeEncodeError:
    return False
  return True


def os_error_reason(path: str, error: OSError) -> str:
  """Why the file at path cannot be read, in a few words."""
  if error.errno == errno.ELOOP:
    return f'symbolic link loop ({error.strerror})'
  if error.errno == errno.ENOENT and os.path.islink(path):
    return f'dangling symbolic link to {display_name(os.readlink(path))}'
  if error.errno in (errno.EACCES, errno.EPERM):
    return f'permission denied ({error.strerror})'
  return f'cannot read: {error.strerror or type(error).__name__}'


_FILE_KINDS = ((stat.S_ISDIR, 'a directory'), (stat.S_ISFIFO, 'a FIFO'),
               (stat.S_ISSOCK, 'a socket'), (stat.S_ISCHR, 'a character device'),
               (stat.S_ISBLK, 'a block device'))


def _special_kind(mode: int) -> str:
  return next((kind for test, kind in _FILE_KINDS if test(mode)), 'a special file')


def read_file(path: str) -> bytes:
  """The bytes of a regular file; BadImageError (the reason) for anything else.

  Special files are refused by their stat before any open: opening a FIFO
  blocks until someone writes to it. The open is non-blocking and checked
  again, in case the file was swapped in between.
  """
  try:
    mode = os.stat(path).st_mode
    if not stat.S_ISREG(mode):
      raise BadImageError(f'not a regular file ({_special_kind(mode)})')
    fd = os.open(path, os.O_RDONLY | getattr(os, 'O_NONBLOCK', 0))
    with os.fdopen(fd, 'rb') as f:
      mode = os.fstat(f.fileno()).st_mode
      if not stat.S_ISREG(mode):
        raise BadImageError(f'not a regular file ({_special_kind(mode)})')
      return f.read()
  except OSError as e:
    raise BadImageError(os_error_reason(path, e)) from e


def load_rgb(data: bytes) -> np.ndarray:
  """Decodes image bytes to uint8 HxWx3 RGB, converting other modes.

  Raises BadImageError (with the reason) for empty, corrupt or truncated files.
  """
  if not data:
    raise BadImageError('empty file (0 bytes)')
  try:
    with Image.open(io.BytesIO(data)) as img:
      img.load()
      if img.mode != 'RGB':
        img = _to_rgb(img)
      return np.asarray(img, dtype=np.uint8)
  except Image.UnidentifiedImageError as e:
    raise BadImageError('not a recognised image file') from e
  except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
    # Truncated or corrupt data: PIL raises any of these depending on the format.
    raise BadImageError(f'cannot decode: {type(e).__name__}: {e}') from e


def _to_rgb(img: Image.Image) -> Image.Image:
  """RGB view of any PIL mode; 16/32-bit greys are scaled to 8 bits first."""
  if img.mode in ('I;16', 'I;16B', 'I;16L', 'I'):
    arr = np.asarray(img, dtype=np.float64)
    top = 65535.0 if img.mode.startswith('I;16') or arr.max() > 255 else 255.0
    img = Image.fromarray(np.clip(arr * (255.0 / top) + 0.5, 0, 255).astype(np.uint8))
  elif img.mode == 'F':
    img = Image.fromarray(np.clip(np.asarray(img) + 0.5, 0, 255).astype(np.uint8))
  return img.convert('RGB')


def parse_box(text: str) -> Optional[Box]:
  """'x0,y0,x1,y1' -> (x0, y0, x1, y1); '' -> None."""
  if not text or not text.strip():
    return None
  try:
    box = tuple(int(v) for v in text.split(','))
  except ValueError as e:
    raise ValueError(f"crop_box must be 'x0,y0,x1,y1' integers, got {text!r}") from e
  if len(box) != 4 or box[2] <= box[0] or box[3] <= box[1]:
    raise ValueError(f"crop_box must be 'x0,y0,x1,y1' with x1 > x0 and y1 > y0, got {text!r}")
  return box


def _round_half_up(x: float) -> int:
  return int(math.floor(x + 0.5))


def square_box(cx: float, cy: float, side: float, width: int, height: int) -> Box:
  """A square of `side` centred at (cx, cy), moved (not cut) to lie inside the image.

  A square wider than the image shrinks to the image's shorter side. Side and
  corner round half up.
  """
  s = _round_half_up(min(side, width, height))
  x0 = _round_half_up(cx - s / 2)
  y0 = _round_half_up(cy - s / 2)
  x0 = min(max(x0, 0), width - s)
  y0 = min(max(y0, 0), height - s)
  return x0, y0, x0 + s, y0 + s


def landmark_box(eye_centre: Sequence[float], mouth_centre: Sequence[float],
                 width: int, height: int) -> Box:
  """The face box of CelebA and Helen crops.

  With e the mid-point of the eyes, m that of the mouth corners and
  d = |m - e|: a square of side 3.5 d centred at ((e + m) / 2) moved up by
  0.1 d, then moved inside the image (see square_box). In the 128x128 crop the
  eyes then sit at 38.6% of the height and the mouth at 67%, as in the DIC
  CelebA test crops.
  """
  e = np.asarray(eye_centre, np.float64)
  m = np.asarray(mouth_centre, np.float64)
  d = float(np.linalg.norm(m - e))
  if not d > 0:
    raise BadImageError('eyes and mouth landmarks coincide')
  cx, cy = (e + m) / 2
  return square_box(cx, cy - BOX_CENTRE_UP_PER_EYE_MOUTH * d,
                    BOX_SIDE_PER_EYE_MOUTH * d, width, height)


def crop_resize(image: np.ndarray, box: Optional[Box], size: int = HR_SIZE) -> np.ndarray:
  """Crops `box` (None = centred square) and resizes to size x size, PIL bicubic.

  A non-square box is first cut to its centred square so faces keep their shape.
  """
  h, w = image.shape[:2]
  if box is None:
    box = (0, 0, w, h)
  x0, y0, x1, y1 = box
  if x0 < 0 or y0 < 0 or x1 > w or y1 > h:
    raise BadImageError(f'crop box {box} lies outside the {w}x{h} image')
  bw, bh = x1 - x0, y1 - y0
  s = min(bw, bh)
  if s < MIN_CROP_SIDE:
    raise BadImageError(f'crop {bw}x{bh} is smaller than {MIN_CROP_SIDE} px')
  x0 += (bw - s) // 2
  y0 += (bh - s) // 2
  img = Image.fromarray(image).crop((x0, y0, x0 + s, y0 + s))
  if s != size:
    img = img.resize((size, size), Image.BICUBIC)
  return np.asarray(img, dtype=np.uint8)


class FileSource:
  """Reads members of a zip or files of a folder by relative path.

  Reading one member raises BadImageError (the reason) whatever goes wrong with
  it; a root that is neither a folder nor a readable zip is a DataError.
  Sub-folders that cannot be listed are kept in `unlisted` as (relative path,
  reason) once `names()` has run.
  """

  def __init__(self, root: str):
    self.root = root
    self.unlisted: List[Tuple[str, str]] = []
    self._zip = None if os.path.isdir(root) else _open_zip(root)

  def names(self) -> List[str]:
    """Relative paths of every file, sorted."""
    if self._zip is not None:
      return sorted(n for n in self._zip.namelist() if not n.endswith('/'))
    self.unlisted = []
    out = []
    for d, _, files in os.walk(self.root, onerror=self._note_unlisted):
      out.extend(os.path.relpath(os.path.join(d, f), self.root) for f in files)
    return sorted(out)

  def _note_unlisted(self, error: OSError) -> None:
    path = error.filename or self.root
    self.unlisted.append((os.path.relpath(path, self.root),
                          f'cannot list the folder: {os_error_reason(path, error)}'))

  def read(self, name: str) -> bytes:
    if self._zip is None:
      return read_file(os.path.join(self.root, name))
    try:
      return self._zip.read(name)
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError,
            OSError) as e:
      # Bad CRC, truncated data, an unsupported compression, a password.
      raise BadImageError(f'cannot read from {os.path.basename(self.root)}: '
                          f'{type(e).__name__}: {e}') from e

  def close(self):
    if self._zip is not None:
      self._zip.close()


def _open_zip(path: str) -> zipfile.ZipFile:
  """The zip at path, or a DataError saying why it is not one."""
  if not os.path.lexists(path):
    raise MissingDataError(f'{path} does not exist')
  # Only a regular file is probed: opening a FIFO would block.
  if not os.path.isfile(path) or not zipfile.is_zipfile(path):
    raise DataError(f'{path} is neither a folder nor a zip file')
  try:
    return zipfile.ZipFile(path)
  except (zipfile.BadZipFile, OSError) as e:
    raise DataError(f'{path} is not a readable zip file: {type(e).__name__}: {e}') from e


def is_image_name(name: str) -> bool:
  return name.lower().endswith(IMAGE_EXTENSIONS)


def no_images_error(what: str, folder: str, num_files: int) -> MissingDataError:
  """'no <what> in <folder>: ...' for a folder without a single image file."""
  if not num_files:
    return MissingDataError(f'no {what} in {folder}: the folder is empty')
  files = '1 file has' if num_files == 1 else f'{num_files} files has'
  return MissingDataError(f'no {what} in {folder}: none of its {files} an image extension '
                          f'({", ".join(IMAGE_EXTENSIONS)})')


def bad_entry(name: str, reason: str) -> Dict[str, str]:
  """One row of the bad-file report, printable and storable as UTF-8 JSON."""
  return {'file': display_name(name), 'reason': one_line(reason)}


def try_example(name: str, make: Callable[[], Dict[str, np.ndarray]]
                ) -> Tuple[Optional[Dict[str, np.ndarray]], Optional[Dict[str, str]]]:
  """(example, None) for a good item, (None, its bad_entry) for a bad one."""
  if not is_utf8(name):
    # TFDS would fail the whole build encoding the name feature.
    return None, bad_entry(name, 'file name is not valid UTF-8')
  try:
    return make(), None
  except BadImageError as e:
    return None, bad_entry(name, str(e))


def check_bad_fraction(split: str, bad: List[Dict[str, str]], total: int,
                       max_fraction: float, where: str = '') -> None:
  """Logs the skipped files; raises when they exceed max_fraction of the split.

  `where` names the folder or zip they came from, for the messages.
  """
  place = f' in {where}' if where else ''
  if bad:
    logging.warning('%s: skipped %d of %d files%s:\n%s', split, len(bad), total, place,
                    '\n'.join(f'  {b["file"]}: {b["reason"]}' for b in bad))
  if total and len(bad) > max_fraction * total:
    raise TooManyBadFilesError(
        f'{split}: {len(bad)} of {total} files are bad ({100.0 * len(bad) / total:.2f}%)'
        f'{place}, more than the allowed {100.0 * max_fraction:g}%: fix or remove them '
        '(the log lists every one). First: '
        + '; '.join(f'{b["file"]}: {b["reason"]}' for b in bad[:5]))


def raw_image_feature(size: int) -> tfds.features.Tensor:
  """uint8 (size, size, 3) stored as one bytes value (not 49,152 int64s)."""
  return tfds.features.Tensor(shape=(size, size, 3), dtype=np.uint8,
                              encoding=tfds.features.Encoding.BYTES)


def hr_features(extra: Optional[Dict[str, tfds.features.FeatureConnector]] = None):
  """The feature dict of every builder: raw uint8 HR and a name (+ extras)."""
  feats = {
      'hr': raw_image_feature(HR_SIZE),
      'name': tfds.features.Text(),
  }
  feats.update(extra or {})
  return tfds.features.FeaturesDict(feats)


class FaceSrBuilder(tfds.core.GeneratorBasedBuilder, abc.ABC):
  """Base of the face-SR builders: array_record output, bad-file accounting.

  Subclasses generate (name, example thunk) pairs through `_filtered`; a thunk
  raises BadImageError (the reason) for a file to skip.
  """

  # What the manual dir holds and the config key that names it, for messages.
  MANUAL_DIR_HOLDS = 'the source files'
  MANUAL_DIR_KEY = 'data.manual_dir'

  def __init__(self, *, file_format=None,
               max_bad_fraction: float = DEFAULT_MAX_BAD_FRACTION, **kwargs):
    # array_record is what tfds.data_source / grain read by random access.
    super().__init__(file_format=file_format or 'array_record', **kwargs)
    self.max_bad_fraction = max_bad_fraction

  def _face_info(self, features: tfds.features.FeaturesDict, description: str,
                 homepage: Optional[str] = None) -> tfds.core.DatasetInfo:
    """DatasetInfo kept in generation order (sorted names) with a bad-file report."""
    return self.dataset_info_from_configs(
        features=features, description=description, homepage=homepage,
        disable_shuffling=True, metadata=tfds.core.MetadataDict(bad_files={}))

  def download_and_prepare(self, *args, **kwargs):
    """TFDS's download_and_prepare; a DataError from inside it is raised as itself.

    TFDS builds into a temporary directory and removes it when the build
    fails, so a failed build never counts as prepared.
    """
    try:
      return super().download_and_prepare(*args, **kwargs)
    except Exception as e:  # pylint: disable=broad-except
      error = find_data_error(e)
      if error is None or error is e:
        raise
      raise error from None

  def _manual_folder(self, dl_manager: tfds.download.DownloadManager) -> str:
    """dl_manager.manual_dir as a path; ManualDirError if it is missing or empty.

    TFDS itself raises an AssertionError carrying the whole
    MANUAL_DOWNLOAD_INSTRUCTIONS.
    """
    try:
      return os.fspath(dl_manager.manual_dir)
    except (AssertionError, OSError) as e:
      # TFDS keeps the path private, in DownloadManager._manual_dir.
      path = os.fspath(getattr(dl_manager, '_manual_dir', None) or 'the manual dir')
      if isinstance(e, OSError):
        state = f'cannot be listed ({os_error_reason(path, e)})'
      else:
        state = 'is empty' if os.path.isdir(path) else 'does not exist'
      raise ManualDirError(
          f'{self.name}: the folder {path} {state}; it should hold {self.MANUAL_DIR_HOLDS} '
          f'(--config.{self.MANUAL_DIR_KEY}=DIR for training, --manual_dir for tfds build)'
      ) from e

  def _filtered(self, split: str,
                items: Iterable[Tuple[str, Callable[[], Dict[str, np.ndarray]]]],
                where: str = '') -> Iterator[Tuple[str, Dict[str, np.ndarray]]]:
    """Yields (key, example) for the good items; skips, logs and counts the bad.

    `where` names the folder or zip, for the messages.
    """
    bad, total = [], 0
    for name, make in items:
      total += 1
      example, bad_one = try_example(name, make)
      if bad_one is not None:
        bad.append(bad_one)
        continue
      yield name, example
    self.info.metadata['bad_files'][split] = bad
    check_bad_fraction(split, bad, total, self.max_bad_fraction, where)

  @abc.abstractmethod
  def _generate_examples(self, *args, **kwargs):
    """Subclasses generate through `_filtered`."""
