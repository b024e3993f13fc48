"""What every entry point shares: process start-up, and flag parsing for `--config`.

`run(main)` is each command's `app.run`: it first applies the CPU process
settings (mrr_jax.platform, on CPU hosts only), then parses flags.

For the entry points that take `--config FILE[:ARG]` and `--config.KEY=VALUE`:

absl reports a wrong value type in one line, but an unknown key or a config
file that does not load surfaced as a chain of tracebacks (an unknown key got
a "did you mean" only when it was one typo away from a real one). This
parser says which argument is wrong and lists the keys the config has.
"""
import difflib
import importlib.util
import json
import os
import sys
from typing import Any, Callable, Dict, List, Optional, Sequence

from absl import app, flags
import ml_collections

from mrr_jax import platform


def dotted_keys(config: ml_collections.ConfigDict, prefix: str = '') -> List[str]:
  """Every leaf key of a ConfigDict as a --config.KEY path, sorted ('model.att_kernels')."""
  keys = []
  for name, value in config.items():
    path = f'{prefix}{name}'
    if isinstance(value, ml_collections.ConfigDict):
      keys.extend(dotted_keys(value, path + '.'))
    else:
      keys.append(path)
  return sorted(keys)


def _flag_value(argv: Sequence[str], name: str) -> Optional[str]:
  """The value of --name (as '--name=v' or '--name v') in argv, or None."""
  for i, arg in enumerate(argv):
    if arg.startswith(f'--{name}='):
      return arg.split('=', 1)[1]
    if arg == f'--{name}' and i + 1 < len(argv):
      return argv[i + 1]
  return None


def unknown_key_message(argv: Sequence[str], config: ml_collections.ConfigDict) -> str:
  """Names each --config.KEY override in argv that the config lacks, and the valid keys."""
  valid = dotted_keys(config)
  prefixes = {k.rsplit('.', i)[0] for k in valid for i in range(k.count('.') + 1)}
  bad, guesses = [], []
  for arg in argv:
    if arg.startswith('--config.'):
      key = arg[len('--config.'):].split('=', 1)[0]
      if key not in prefixes:
        bad.append(arg)
        guesses += difflib.get_close_matches(key, valid, n=1, cutoff=0.8)
  what = ', '.join(bad) if bad else 'a --config.KEY override'
  guess = f' Did you mean {" / ".join(guesses)}?' if guesses else ''
  return f'unknown config key in {what}.{guess} Valid keys: {", ".join(valid)}'


def _load_config(spec: str) -> ml_collections.ConfigDict:
  """get_config(ARG) of FILE for a --config FILE[:ARG], as config_flags loads it."""
  path, *arg = spec.split(':', 1)
  module_spec = importlib.util.spec_from_file_location('_mrr_jax_config', path)
  if module_spec is None:
    raise OSError(f'cannot load {path}')
  module = importlib.util.module_from_spec(module_spec)
  module_spec.loader.exec_module(module)
  return module.get_config(*arg)


def _fail(message: str) -> None:
  print(f'error: {message}', file=sys.stderr)
  sys.exit(1)


def parse_flags(argv: List[str]) -> List[str]:
  """app.run's flags_parser: absl's parsing, with --config mistakes told in one line."""
  spec = _flag_value(argv[1:], 'config')
  try:
    remaining = app.parse_flags_with_usage(argv)  # Bad types etc.: absl's message and exit 1.
  except (AttributeError, KeyError) as e:  # An override of a key the config lacks.
    try:
      config = _load_config(spec)
    except Exception:  # pylint: disable=broad-except
      _fail(f'{e} (from a --config.KEY override)')
    _fail(unknown_key_message(argv[1:], config))
  try:
    flags.FLAGS['config'].value.keys()  # A file that failed to load fails here, not above.
  except OSError as e:
    _fail(f'--config {spec}: {e}')
  except AttributeError:
    pass  # No --config given: the entry point's required-flag check says so.
  return remaining


def define_overwrite_flag(fv: flags.FlagValues) -> None:
  """--overwrite as infer and restore mean it (mrr_jax.outputs.check_dir)."""
  flags.DEFINE_bool('overwrite', False, 'Write into a non-empty --output folder, replacing '
                    'files of the same names.', flag_values=fv)


def check_args(argv: Sequence[str], fv: flags.FlagValues, required: Sequence[str]) -> None:
  """app.UsageError for positional arguments or a missing required flag (by name)."""
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  if not all(fv[name].value for name in required):
    names = [f'--{n}' for n in required]
    said = names[0] if len(names) == 1 else ', '.join(names[:-1]) + ' and ' + names[-1]
    raise app.UsageError(f'{said} {"is" if len(names) == 1 else "are"} required')


def emit_json_line(row: Dict[str, Any], path: Optional[str] = None) -> None:
  """A result row as one JSON line on stdout, and appended to `path` when given (bench, roofline)."""
  line = json.dumps(row)
  print(line, flush=True)
  if path:
    with open(path, 'a') as f:
      f.write(line + '\n')


def compilation_cache_dir(environ=os.environ) -> str:
  """Where the commands that run an export keep compiled programs: XDG's cache folder."""
  base = environ.get('XDG_CACHE_HOME') or os.path.join(os.path.expanduser('~'), '.cache')
  return os.path.join(base, 'mrr_jax', 'jit')


def enable_compilation_cache() -> None:
  """jax's persistent compilation cache for infer, restore, evaluate and demo.

  Compiling the generator takes longer than running it on a few faces; with
  the cache a second run of the same shapes loads the program instead. A
  JAX_COMPILATION_CACHE_DIR the user set wins; a folder that cannot be made
  leaves the cache off (slower, same results).
  """
  import jax  # pylint: disable=g-import-not-at-top
  if os.environ.get('JAX_COMPILATION_CACHE_DIR'):
    return
  path = compilation_cache_dir()
  try:
    os.makedirs(path, exist_ok=True)
  except OSError:
    return
  jax.config.update('jax_compilation_cache_dir', path)
  jax.config.update('jax_persistent_cache_min_compile_time_secs', 0.5)


def run(main: Callable[[List[str]], None], config_flags: bool = False) -> None:
  """Starts an entry point: CPU process settings first (they may re-execute), then absl.

  config_flags: the command takes --config (parse_flags reports its mistakes).
  """
  platform.prepare_process()
  app.run(main, flags_parser=parse_flags if config_flags else app.parse_flags_with_usage)
