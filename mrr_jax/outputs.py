"""Writing outputs safely: paths checked before any work, files written atomically.

An evaluation that fails after scoring because --save_dir names a file loses
its results; an output folder of the user's own files must never be written
into by accident. Each check raises OutputPathError with one line naming the
flag and the path. Every file mrr_jax writes goes to a temporary file beside
it and is renamed into place, so a crash or a full disk never leaves half a
file under the real name.
"""
import os
import tempfile
from typing import Callable, IO, Iterable, Optional


class OutputPathError(ValueError):
  """An output path that cannot or must not be written."""


def _check_parent(path: str, flag: str) -> None:
  """The nearest existing ancestor of `path` must be a writable folder."""
  parent = os.path.dirname(os.path.abspath(path))
  while not os.path.exists(parent):
    parent = os.path.dirname(parent)
  if not os.path.isdir(parent):
    raise OutputPathError(f'{flag} {path}: {parent} is a file, not a folder')
  if not os.access(parent, os.W_OK | os.X_OK):
    raise OutputPathError(f'{flag} {path}: {parent} is not writable')


def check_file(path: Optional[str], flag: str) -> None:
  """A file to create or replace (e.g. --json): not a folder, in a writable place."""
  if not path:
    return
  if os.path.isdir(path):
    raise OutputPathError(f'{flag} {path} is a folder; give a file name')
  if os.path.exists(path) and not os.access(path, os.W_OK):
    raise OutputPathError(f'{flag} {path} is not writable')
  _check_parent(path, flag)


def _entries(folder: str) -> list:
  return sorted(os.listdir(folder))


def check_dir(path: Optional[str], flag: str, ours: Optional[Iterable[str]] = None,
              overwrite: bool = False) -> None:
  """A folder to write into: new, empty, or holding only names in `ours`.

  ours: the entries this command writes (re-running it may replace them).
  overwrite: the user allows replacing files of the names this command writes.
  """
  if not path:
    return
  if os.path.exists(path) and not os.path.isdir(path):
    raise OutputPathError(f'{flag} {path} is a file, not a folder')
  if not os.path.isdir(path):
    _check_parent(path, flag)
    return
  if not os.access(path, os.W_OK | os.X_OK):
    raise OutputPathError(f'{flag} {path} is not writable')
  foreign = [e for e in _entries(path) if ours is None or e not in set(ours)]
  if foreign and not overwrite:
    shown = ', '.join(foreign[:5]) + (', ...' if len(foreign) > 5 else '')
    hint = ' (or pass --overwrite to replace files of the same names)' if ours is None else ''
    raise OutputPathError(f'{flag} {path} already holds {len(foreign)} entries this command did '
                          f'not write ({shown}); choose a new or empty folder{hint}')


def write_atomically(path: str, write: Callable[[IO], None], binary: bool = True) -> str:
  """Calls write(file) on a temporary file beside path, then renames it to path."""
  folder = os.path.dirname(os.path.abspath(path))
  os.makedirs(folder, exist_ok=True)
  fd, tmp = tempfile.mkstemp(prefix='.' + os.path.basename(path) + '.', suffix='.tmp', dir=folder)
  try:
    with os.fdopen(fd, 'wb' if binary else 'w') as f:
      write(f)
      f.flush()
      os.fsync(f.fileno())
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)
  except BaseException:
    if os.path.exists(tmp):
      os.remove(tmp)
    raise
  return path
