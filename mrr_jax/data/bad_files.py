"""The bad-file policy: what a bad input is, how it is reported, when there are too many.

Bad inputs never abort a build or an evaluation on their own: each is skipped
and listed with its reason (names with backslash escapes for what is not
printable UTF-8). A split where more than `max_bad_fraction` (default 1%) of
the files are bad raises TooManyBadFilesError naming the folder and counts.
What the user must fix is a DataError: a ValueError whose message is one line.
"""
from typing import Callable, Dict, List, Optional, Tuple

from absl import logging
import numpy as np

DEFAULT_MAX_BAD_FRACTION = 0.01


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
