"""Training MRRNet (phase 1, L1) and MRRGAN (phase 2): state, steps, setup, checkpoints, loop.

state, steps and setup import no data stack (no TensorFlow, TFDS or grain), so
benchmarks and lowering checks run on a bare accelerator image; loop reads the
data and writes the workdir.
"""
