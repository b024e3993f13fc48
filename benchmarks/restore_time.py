r"""Wall time of `python -m mrr_jax.restore` on one photo of 3 faces: first run, then cached.

  python benchmarks/restore_time.py [--runs 3]

Makes a full-size generator export (random weights: the time does not depend
on them) and a 720x420 photo of three copies of scikit-image's astronaut, then
times the command in fresh processes with an empty compilation cache (first
run) and with the cache it left (later runs). Prints one JSON line per run.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument('--runs', type=int, default=3)
  args = parser.parse_args()
  from PIL import Image  # pylint: disable=g-import-not-at-top
  from mrr_jax.models import init as model_init  # pylint: disable=g-import-not-at-top
  from mrr_jax.weights import export_format  # pylint: disable=g-import-not-at-top
  from tests import test_faces, test_restore  # pylint: disable=g-import-not-at-top
  root = tempfile.mkdtemp(prefix='restore_time_')
  generator = export_format.build_generator({})
  model = export_format.save_generator(os.path.join(root, 'export'), generator,
                                       model_init.init_generator(generator, 0))
  photo, _ = test_faces.compose((720, 420), test_restore.THREE)
  Image.fromarray(photo).save(os.path.join(root, 'group.jpg'), quality=92)
  env = {k: v for k, v in os.environ.items() if k != 'JAX_COMPILATION_CACHE_DIR'}
  env['XDG_CACHE_HOME'] = os.path.join(root, 'cache')
  for run in range(args.runs):
    out = os.path.join(root, f'out{run}')
    t0 = time.perf_counter()
    result = subprocess.run([sys.executable, '-m', 'mrr_jax.restore', '--model', model, '--input',
                             os.path.join(root, 'group.jpg'), '--output', out], cwd=REPO, env=env,
                            capture_output=True, text=True)
    wall = time.perf_counter() - t0
    print(json.dumps({'run': run + 1, 'cache': 'empty' if run == 0 else 'warm', 'wall_s': round(wall, 2),
                      'rc': result.returncode, 'summary': result.stdout.strip().splitlines()[-1:]}),
          flush=True)


if __name__ == '__main__':
  main()
