"""Reading the files of a folder or zip that anyone may have put there.

Every way a file can be unreadable (a symlink loop or dangling link, no
permission, a FIFO or other special file, a name that is not UTF-8, a bad zip
member) is a BadImageError with the reason, so callers skip it as one more bad
file; special files are refused by their stat and never opened (opening a FIFO
blocks until someone writes to it).
"""
import errno
import os
import stat
import zipfile
import zlib
from typing import List, Tuple

from mrr_jax.data.bad_files import BadImageError, DataError, MissingDataError, display_name


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
