"""Tests for launch/: the commands each script would run, and what it refuses.

Every script runs in a controlled environment (PATH = a folder of fake tools +
/usr/bin:/bin, no inherited settings). The fake gcloud, srun, sbatch, python3,
git and tensorboard record any call, so the dry-run tests also show that
--dry-run runs none of them; no test needs gcloud, SLURM or a network.
"""
import pathlib
import shlex
import shutil
import subprocess

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
LAUNCH = REPO / 'launch'
SCRIPTS = ('tpu_create.sh', 'tpu_setup.sh', 'tpu_run.sh', 'tpu_tensorboard.sh',
           'gpu_run.sh', 'slurm_task.sh', 'slurm_run.sbatch')
TOOLS = ('gcloud', 'srun', 'sbatch', 'python3', 'git', 'tensorboard')
# Overrides a shell could mangle: spaces, both quote kinds, parentheses, '$'.
OVERRIDES = ['--config.data.train_dir=/data/my faces',
             '--config.note=it\'s "quoted" $HOME',
             '--config.model.att_kernels=(1, 3, 5)']
TPU = {'PROJECT': 'my-project', 'ZONE': 'us-central2-b', 'TPU_NAME': 'mrr-v4-32'}
SLURM = {'SLURM_JOB_NODELIST': 'gpu-a[017-018]', 'SLURM_NTASKS': '16',
         'SLURM_PROCID': '9', 'SLURM_JOB_ID': '1234567'}


def _write_exe(path, text):
  path.write_text(text)
  path.chmod(0o755)


@pytest.fixture
def fake_bin(tmp_path):
  """A PATH folder of fake tools; each writes its argv (NUL-separated) to calls/TOOL."""
  bin_dir = tmp_path / 'bin'
  calls = tmp_path / 'calls'
  bin_dir.mkdir()
  calls.mkdir()
  for tool in TOOLS:
    _write_exe(bin_dir / tool,
               f'#!/bin/sh\nprintf "%s\\0" "$@" > "{calls}/{tool}"\n')
  # scontrol answers `show hostnames LIST` as SLURM would for gpu-a[017-018].
  _write_exe(bin_dir / 'scontrol',
             f'#!/bin/sh\nprintf "%s\\0" "$@" > "{calls}/scontrol"\n'
             'printf "gpu-a017\\ngpu-a018\\n"\n')
  return bin_dir


def run(script, *args, fake_bin, env=None, cwd=None):
  """Runs launch/SCRIPT with only the given environment; returns the CompletedProcess."""
  full_env = {'PATH': f'{fake_bin}:/usr/bin:/bin', 'TMPDIR': str(fake_bin.parent)}
  full_env.update(env or {})
  return subprocess.run(['bash', str(LAUNCH / script), *args], env=full_env,
                        cwd=cwd or fake_bin.parent, capture_output=True,
                        text=True, check=False)


def calls(fake_bin):
  """{tool: argv} of the fake tools that were called."""
  return {p.name: p.read_text().split('\0')[:-1]
          for p in (fake_bin.parent / 'calls').iterdir()}


def dry_run(script, *args, fake_bin, env=None, cwd=None):
  """The commands a --dry-run prints, each as an argv list; checks nothing ran."""
  proc = run(script, '--dry-run', *args, fake_bin=fake_bin, env=env, cwd=cwd)
  assert proc.returncode == 0, proc.stderr
  lines = proc.stdout.splitlines()
  assert lines and all(line.startswith('+ ') for line in lines), proc.stdout
  assert set(calls(fake_bin)) <= {'scontrol'}  # a read-only lookup
  return [shlex.split(line[2:]) for line in lines]


def split_remote(ssh_argv):
  """The --command=... of a gcloud ssh argv, split into shell words."""
  (command,) = [a for a in ssh_argv if a.startswith('--command=')]
  return shlex.split(command[len('--command='):])


# ---------------------------------------------------------------- TPU VM


def test_tpu_create_dry_run_prints_the_gcloud_command(fake_bin):
  env = dict(TPU, ACCELERATOR_TYPE='v4-32')
  assert dry_run('tpu_create.sh', '--', '--spot', fake_bin=fake_bin, env=env) == [[
      'gcloud', 'compute', 'tpus', 'tpu-vm', 'create', 'mrr-v4-32',
      '--project=my-project', '--zone=us-central2-b', '--accelerator-type=v4-32',
      '--version=tpu-ubuntu2204-base', '--spot']]


def test_flags_override_environment(fake_bin):
  env = dict(TPU, ACCELERATOR_TYPE='v4-32')
  (cmd,) = dry_run('tpu_create.sh', '--zone', 'europe-west4-a',
                   '--runtime-version=v2-alpha-tpuv5-lite', fake_bin=fake_bin,
                   env=env)
  assert cmd[7:] == ['--zone=europe-west4-a', '--accelerator-type=v4-32',
                     '--version=v2-alpha-tpuv5-lite']


def test_without_dry_run_the_printed_command_is_the_one_run(fake_bin):
  env = dict(TPU, ACCELERATOR_TYPE='v4-8')
  printed = run('tpu_create.sh', '--dry-run', '--', '--description=a "b" c',
                fake_bin=fake_bin, env=env).stdout
  proc = run('tpu_create.sh', '--', '--description=a "b" c', fake_bin=fake_bin,
             env=env)
  assert proc.returncode == 0, proc.stderr
  assert proc.stderr == printed  # real runs log the same line, on stderr
  assert calls(fake_bin) == {'gcloud': shlex.split(printed[2:])[1:]}
  assert calls(fake_bin)['gcloud'][-1] == '--description=a "b" c'


def test_tpu_setup_clones_and_installs_on_all_workers(fake_bin):
  (ssh,) = dry_run('tpu_setup.sh', '--repo-url', 'https://example.com/me/mrr_jax.git',
                   fake_bin=fake_bin, env=TPU)
  assert ssh[:9] == ['gcloud', 'compute', 'tpus', 'tpu-vm', 'ssh', 'mrr-v4-32',
                     '--worker=all', '--project=my-project', '--zone=us-central2-b']
  assert ssh[9] == (
      '--command={ test -d mrr_jax/.git || git clone '
      'https://example.com/me/mrr_jax.git mrr_jax; }'
      ' && git -C mrr_jax fetch --tags origin'
      ' && git -C mrr_jax checkout --detach origin/HEAD'
      ' && cd mrr_jax'
      ' && { test -x .venv/bin/python || { python3 -m pip install --user --upgrade uv'
      ' && python3 -m uv venv --seed --python 3.11 .venv; }; }'
      ' && .venv/bin/pip install -r requirements.txt'
      ' && .venv/bin/pip install -U "jax[tpu]==0.10.2"')


def test_tpu_setup_copies_this_checkout_to_all_workers(fake_bin):
  archive = f'{fake_bin.parent}/mrr_jax-src-mrr-v4-32.tar.gz'
  pack, scp, ssh = dry_run('tpu_setup.sh', '--remote-dir', 'my dir', fake_bin=fake_bin,
                           env=TPU)
  assert pack == ['git', '-C', str(REPO), 'archive', '--format=tar.gz',
                  f'--output={archive}', 'HEAD']
  assert scp == ['gcloud', 'compute', 'tpus', 'tpu-vm', 'scp', archive,
                 'mrr-v4-32:mrr_jax-src-mrr-v4-32.tar.gz', '--worker=all',
                 '--project=my-project', '--zone=us-central2-b']
  assert split_remote(ssh)[:12] == [
      'mkdir', '-p', 'my dir', '&&', 'tar', '-xzf', 'mrr_jax-src-mrr-v4-32.tar.gz',
      '-C', 'my dir', '&&', 'cd', 'my dir']


def test_tpu_run_passes_config_and_overrides_unchanged_to_all_workers(fake_bin):
  env = dict(TPU, ACCELERATOR_TYPE='v4-32')
  (ssh,) = dry_run('tpu_run.sh', '--config', 'configs/mrrgan.py:tiny',
                   '--workdir=gs://my-bucket/run 1', OVERRIDES[0], '--',
                   *OVERRIDES[1:], fake_bin=fake_bin, env=env)
  assert ssh[:9] == ['gcloud', 'compute', 'tpus', 'tpu-vm', 'ssh', 'mrr-v4-32',
                     '--worker=all', '--project=my-project', '--zone=us-central2-b']
  assert split_remote(ssh) == [
      'cd', 'mrr_jax', '&&', '.venv/bin/python', '-m', 'mrr_jax.main',
      '--config', 'configs/mrrgan.py:tiny', '--workdir', 'gs://my-bucket/run 1',
      *OVERRIDES]


def test_tpu_run_remote_shell_gets_the_exact_arguments(fake_bin, tmp_path):
  """Runs the remote command through bash, as a worker would, with a fake venv python."""
  (ssh,) = dry_run('tpu_run.sh', '--config', 'configs/mrrnet.py', '--workdir',
                   'runs/x', '--', *OVERRIDES, fake_bin=fake_bin, env=TPU)
  home = tmp_path / 'worker_home'
  venv_bin = home / 'mrr_jax' / '.venv' / 'bin'
  venv_bin.mkdir(parents=True)
  _write_exe(venv_bin / 'python', '#!/bin/sh\nprintf "%s\\0" "$@"\n')
  (command,) = [a for a in ssh if a.startswith('--command=')]
  out = subprocess.run(['bash', '-c', command[len('--command='):]], cwd=home,
                       env={'PATH': '/usr/bin:/bin', 'HOME': '/nonexistent'},
                       capture_output=True, text=True, check=True).stdout
  assert out.split('\0')[:-1] == ['-m', 'mrr_jax.main', '--config', 'configs/mrrnet.py',
                                  '--workdir', 'runs/x', *OVERRIDES]


@pytest.mark.parametrize('accelerator,workdir,ok', [
    ('v4-8', 'runs/x', True),              # one host: a VM path is fine
    ('v5litepod-8', '/tmp/runs/x', True),
    ('v4-32', 'gs://my-bucket/x', True),   # 4 hosts share the bucket
    ('v4-16', 'runs/x', False),
    ('v5litepod-16', '/tmp/runs/x', False),
    ('', 'runs/x', True),                  # unknown type: not checked
])
def test_tpu_run_multi_host_needs_a_bucket(fake_bin, accelerator, workdir, ok):
  env = dict(TPU, ACCELERATOR_TYPE=accelerator)
  proc = run('tpu_run.sh', '--dry-run', '--config', 'configs/mrrgan.py',
             '--workdir', workdir, fake_bin=fake_bin, env=env)
  assert (proc.returncode == 0) == ok, proc.stderr
  if not ok:
    assert proc.returncode == 2 and proc.stdout == ''
    assert 'WORKDIR must be a gs:// path' in proc.stderr
    assert 'example: WORKDIR=gs://' in proc.stderr


def test_tpu_run_one_worker(fake_bin):
  (ssh,) = dry_run('tpu_run.sh', '--worker', '0', '--config', 'c.py', '--workdir',
                   'w', fake_bin=fake_bin, env=TPU)
  assert ssh[6] == '--worker=0'


def test_tensorboard_from_bucket(fake_bin):
  assert dry_run('tpu_tensorboard.sh', '--workdir', 'gs://my-bucket/run',
                 '--local-dir', 'tb/run', '--port', '6007', '--',
                 '--exclude=.*checkpoint.*', fake_bin=fake_bin) == [
      ['gcloud', 'storage', 'rsync', '--recursive', '--exclude=.*checkpoint.*',
       'gs://my-bucket/run', 'tb/run'],
      ['tensorboard', '--logdir', 'tb/run', '--port', '6007']]


def test_tensorboard_from_worker_0_copy_only(fake_bin):
  assert dry_run('tpu_tensorboard.sh', '--workdir', 'runs/x', '--local-dir', 'tb/x',
                 '--serve', '0', fake_bin=fake_bin, env=TPU) == [
      ['mkdir', '-p', 'tb/x'],
      ['gcloud', 'compute', 'tpus', 'tpu-vm', 'scp', '--recurse',
       'mrr-v4-32:mrr_jax/runs/x', 'tb/x', '--worker=0', '--project=my-project',
       '--zone=us-central2-b']]


# ---------------------------------------------------------------- GPU VM


def test_gpu_run_all_local_gpus(fake_bin, tmp_path):
  assert dry_run('gpu_run.sh', '--config', 'configs/mrrnet.py', '--workdir', 'runs/a',
                 *OVERRIDES, fake_bin=fake_bin, cwd=tmp_path) == [
      ['cd', str(REPO)],
      ['python3', '-m', 'mrr_jax.main', '--config', 'configs/mrrnet.py',
       '--workdir', f'{tmp_path}/runs/a', *OVERRIDES]]


def test_gpu_run_gpu_subset_and_interpreter(fake_bin):
  env = {'CUDA_VISIBLE_DEVICES': '0,1', 'PYTHON': '/opt/venv/bin/python'}
  (_, cmd) = dry_run('gpu_run.sh', '--config', 'configs/mrrgan.py', '--workdir',
                     '/data/runs/g', fake_bin=fake_bin, env=env)
  assert cmd == ['env', 'CUDA_VISIBLE_DEVICES=0,1', '/opt/venv/bin/python', '-m',
                 'mrr_jax.main', '--config', 'configs/mrrgan.py', '--workdir',
                 '/data/runs/g']


# ---------------------------------------------------------------- SLURM


def test_slurm_task_coordinator_is_first_host_with_port(fake_bin):
  env = dict(SLURM, COORDINATOR_PORT='23456')
  cd, cmd = dry_run('slurm_task.sh', '--config', 'configs/mrrgan.py', '--workdir',
                    '/shared/runs/g', '--', *OVERRIDES, fake_bin=fake_bin, env=env)
  assert cd == ['cd', str(REPO)]
  assert cmd == ['python3', '-m', 'mrr_jax.main', '--config', 'configs/mrrgan.py',
                 '--workdir', '/shared/runs/g',
                 '--coordinator_address', 'gpu-a017:23456',
                 '--num_processes', '16', '--process_id', '9', *OVERRIDES]
  assert calls(fake_bin) == {'scontrol': ['show', 'hostnames', 'gpu-a[017-018]']}


def test_slurm_task_default_port_from_job_id(fake_bin):
  (_, cmd) = dry_run('slurm_task.sh', '--config', 'c.py', '--workdir', '/w',
                     fake_bin=fake_bin, env=SLURM)
  assert cmd[cmd.index('--coordinator_address') + 1] == 'gpu-a017:24567'  # 20000 + 4567


@pytest.mark.parametrize('visible,local_id,gpu', [
    (None, '3', '3'),        # node exposes all its GPUs
    ('4,5,6,7', '1', '5'),   # the task's entry of the exposed list
    ('2', '0', '2'),         # SLURM already bound one GPU to the task
])
def test_slurm_task_one_process_per_gpu(fake_bin, visible, local_id, gpu):
  env = dict(SLURM, SLURM_LOCALID=local_id, PROCESS_PER='gpu')
  if visible is not None:
    env['CUDA_VISIBLE_DEVICES'] = visible
  (_, cmd) = dry_run('slurm_task.sh', '--config', 'c.py', '--workdir', '/w',
                     fake_bin=fake_bin, env=env)
  assert cmd[:3] == ['env', f'CUDA_VISIBLE_DEVICES={gpu}', 'python3']
  assert cmd[-4:] == ['--num_processes', '16', '--process_id', '9']


def test_slurm_task_refuses_more_tasks_than_gpus(fake_bin):
  env = dict(SLURM, SLURM_LOCALID='4', PROCESS_PER='gpu', CUDA_VISIBLE_DEVICES='0,1,2,3')
  proc = run('slurm_task.sh', '--dry-run', '--config', 'c.py', '--workdir', '/w',
             fake_bin=fake_bin, env=env)
  assert proc.returncode == 2 and proc.stdout == ''
  assert 'SLURM_LOCALID=4' in proc.stderr and '--ntasks-per-node=4' in proc.stderr


@pytest.mark.parametrize('mode,env_extra,tasks', [
    ('node', {}, '1'),
    ('gpu', {'SLURM_GPUS_ON_NODE': '4'}, '4'),
    ('gpu', {'GPUS_PER_NODE': '8'}, '8'),
])
def test_slurm_run_srun_line_and_its_tasks(fake_bin, tmp_path, mode, env_extra, tasks):
  """The sbatch script's srun line, then each srun task it would start."""
  env = dict(PROCESS_PER=mode, **env_extra)
  (srun,) = dry_run('slurm_run.sbatch', '--config', 'configs/mrrgan.py', '--workdir',
                    'runs/g', *OVERRIDES, fake_bin=fake_bin, env=env, cwd=tmp_path)
  assert srun == ['srun', f'--ntasks-per-node={tasks}', '--kill-on-bad-exit=1',
                  str(LAUNCH / 'slurm_task.sh'), '--config', 'configs/mrrgan.py',
                  '--workdir', f'{tmp_path}/runs/g', '--process-per', mode,
                  '--python', 'python3', '--', *OVERRIDES]
  # Replay the srun line as srun would for task 9 (local id 1) of 16.
  task_env = dict(SLURM, SLURM_LOCALID='1', COORDINATOR_PORT='29500')
  (_, cmd) = dry_run('slurm_task.sh', *srun[4:], fake_bin=fake_bin, env=task_env)
  main = cmd[cmd.index('python3'):]
  assert main == ['python3', '-m', 'mrr_jax.main', '--config', 'configs/mrrgan.py',
                  '--workdir', f'{tmp_path}/runs/g',
                  '--coordinator_address', 'gpu-a017:29500',
                  '--num_processes', '16', '--process_id', '9', *OVERRIDES]
  assert cmd[:cmd.index('python3')] == (
      [] if mode == 'node' else ['env', 'CUDA_VISIBLE_DEVICES=1'])


def test_slurm_run_port_is_passed_on(fake_bin):
  (srun,) = dry_run('slurm_run.sbatch', '--config', 'c.py', '--workdir', '/w',
                    '--coordinator-port', '29500', fake_bin=fake_bin)
  assert srun[-5:] == ['--python', 'python3', '--coordinator-port', '29500', '--']


# ---------------------------------------------------------------- refusals

# script, a complete set of settings, the ones it must refuse to go without.
REQUIRED = [
    ('tpu_create.sh', dict(TPU, ACCELERATOR_TYPE='v4-8'),
     ['PROJECT', 'ZONE', 'TPU_NAME', 'ACCELERATOR_TYPE']),
    ('tpu_setup.sh', TPU, ['PROJECT', 'ZONE', 'TPU_NAME']),
    ('tpu_run.sh', dict(TPU, CONFIG='c.py', WORKDIR='gs://b/r'),
     ['PROJECT', 'ZONE', 'TPU_NAME', 'CONFIG', 'WORKDIR']),
    ('tpu_tensorboard.sh', dict(TPU, WORKDIR='runs/r', LOCAL_DIR='tb'),
     ['WORKDIR', 'LOCAL_DIR', 'PROJECT', 'ZONE', 'TPU_NAME']),
    ('gpu_run.sh', {'CONFIG': 'c.py', 'WORKDIR': '/w'}, ['CONFIG', 'WORKDIR']),
    ('slurm_task.sh', dict(SLURM, CONFIG='c.py', WORKDIR='/w'),
     ['CONFIG', 'WORKDIR', 'SLURM_JOB_NODELIST', 'SLURM_NTASKS', 'SLURM_PROCID',
      'SLURM_JOB_ID']),
    ('slurm_run.sbatch', {'CONFIG': 'c.py', 'WORKDIR': '/w'}, ['CONFIG', 'WORKDIR']),
    ('slurm_run.sbatch',
     {'CONFIG': 'c.py', 'WORKDIR': '/w', 'PROCESS_PER': 'gpu', 'GPUS_PER_NODE': '8'},
     ['GPUS_PER_NODE']),
]


@pytest.mark.parametrize('script,env,var', [
    (script, env, var) for script, env, names in REQUIRED for var in names])
def test_missing_setting_is_refused_by_name(fake_bin, script, env, var):
  dry_run(script, fake_bin=fake_bin, env=env)  # the complete set is accepted
  for value in (None, ''):  # unset, and set but empty
    partial = {k: v for k, v in env.items() if k != var}
    if value is not None:
      partial[var] = value
    proc = run(script, '--dry-run', fake_bin=fake_bin, env=partial)
    assert proc.returncode == 2
    assert proc.stdout == ''
    assert proc.stderr.startswith(f'error: {var} is required'), proc.stderr
    assert f'(example: {var}=' in proc.stderr
  assert set(calls(fake_bin)) <= {'scontrol'}


@pytest.mark.parametrize('script', SCRIPTS)
def test_help_and_unknown_flags(fake_bin, script):
  proc = run(script, '--help', fake_bin=fake_bin)
  assert proc.returncode == 0 and 'Usage' in proc.stdout and '--dry-run' in proc.stdout
  assert '#' not in proc.stdout.splitlines()[0]
  proc = run(script, '--dry-run', '--no-such-flag', 'x', fake_bin=fake_bin)
  assert proc.returncode == 2 and proc.stdout == ''
  assert proc.stderr == 'error: unknown flag --no-such-flag (see --help)\n'


def test_scripts_are_shellcheck_clean():
  if shutil.which('shellcheck') is None:
    pytest.skip('shellcheck is not installed (apt-get install shellcheck)')
  proc = subprocess.run(['shellcheck', '-x', *(str(LAUNCH / s) for s in SCRIPTS),
                         str(LAUNCH / 'common.sh')], capture_output=True, text=True,
                        check=False, cwd=REPO)
  assert proc.returncode == 0, proc.stdout
