"""One trainer per workdir: an advisory lock file naming its holder.

Two trainers on one workdir would remove each other's in-progress
checkpoints. The trainer (process 0 of a multi-host run) takes
`WORKDIR/train.lock` before writing anything: an exclusive flock on the file,
which the kernel releases however the process ends (kill -9 included), and in
the file its holder's host, pid, start time and command line, for the message
a second trainer prints. A lock file left with a holder's details but no flock
on it was left by a process that died: it is taken over with a warning.
"""
import fcntl
import json
import os
import socket
import sys
import time
from typing import Any, Dict, Optional

from absl import logging

LOCK_FILE = 'train.lock'


class WorkdirLockedError(RuntimeError):
  """Another live trainer holds the workdir."""


def _describe(holder: Dict[str, Any]) -> str:
  started = holder.get('started')
  when = time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(started)) if started else '?'
  return (f'pid {holder.get("pid", "?")} on host {holder.get("host", "?")}, started {when}: '
          f'{holder.get("command", "?")}')


def _read_holder(fd: int) -> Optional[Dict[str, Any]]:
  os.lseek(fd, 0, os.SEEK_SET)
  text = os.read(fd, 1 << 16).decode('utf-8', 'replace').strip()
  if not text:
    return None
  try:
    holder = json.loads(text)
  except json.JSONDecodeError:
    return {'command': repr(text[:200])}
  return holder if isinstance(holder, dict) else None


class WorkdirLock:
  """Holds WORKDIR/train.lock from acquire() until release() (or process exit)."""

  def __init__(self, workdir: str):
    self.path = os.path.join(workdir, LOCK_FILE)
    self._fd: Optional[int] = None
    self._created_workdir = False

  def acquire(self) -> 'WorkdirLock':
    """Takes the lock, or raises WorkdirLockedError naming the live holder."""
    workdir = os.path.dirname(self.path)
    self._created_workdir = not os.path.exists(workdir)
    os.makedirs(workdir, exist_ok=True)
    while True:
      fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
      try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
      except BlockingIOError:
        holder = _read_holder(fd) or {}
        os.close(fd)
        raise WorkdirLockedError(
            f'{os.path.dirname(self.path)} is in use by another trainer ({_describe(holder)}); '
            f'wait for it to finish or stop it, or choose another --workdir') from None
      # A holder that released the lock may have unlinked the file between
      # our open and our flock: then this lock is on a dead inode; try again.
      if os.path.exists(self.path) and os.path.samestat(os.fstat(fd), os.stat(self.path)):
        break
      os.close(fd)
    stale = _read_holder(fd)
    if stale:
      logging.warning('taking over the lock of a trainer that is gone (%s)', _describe(stale))
    me = {'host': socket.gethostname(), 'pid': os.getpid(), 'started': time.time(),
          'command': ' '.join(sys.argv)}
    os.ftruncate(fd, 0)
    os.lseek(fd, 0, os.SEEK_SET)
    os.write(fd, json.dumps(me).encode())
    os.fsync(fd)
    self._fd = fd
    return self

  def release(self) -> None:
    """Removes the lock file and drops the lock (a no-op when not held).

    A workdir that acquire() created and nothing else wrote into (a run
    refused at its first check) is removed too.
    """
    if self._fd is None:
      return
    try:
      os.unlink(self.path)
    except FileNotFoundError:
      pass
    os.close(self._fd)
    self._fd = None
    if self._created_workdir:
      try:
        os.rmdir(os.path.dirname(self.path))
      except OSError:
        pass  # Not empty: the run wrote something.

  def __enter__(self) -> 'WorkdirLock':
    return self.acquire()

  def __exit__(self, *exc) -> None:
    self.release()
