"""Weight recipe for the golden files (docs/golden.md#weight-recipe; numpy only).

    state = make_state(read_keys('G_state_dict_keys.txt'), seed=20251125, conv_gain=G_CONV_GAIN)

Rule (applied to the keys in the order given, one generator for the whole module):
    rng = np.random.default_rng(seed)
    for key, shape in keys_with_shapes:
        z = rng.standard_normal(shape, dtype=np.float64)          # always drawn, for every key
        key ends with 'weight_u' or 'weight_v'  -> z / sqrt(sum(z*z))          (spectral-norm buffers)
        len(shape) == 4 (conv weight, OIHW)     -> z * (conv_gain * sqrt(2 / (I*kh*kw)))
        len(shape) == 1 and key ends '.weight'  -> 1 + 0.1 * z                 (InstanceNorm gamma)
        len(shape) == 1 and key ends '.bias'    -> 0.1 * z                     (conv bias or InstanceNorm beta)
        value.astype(np.float32)
"""
import math
import numpy as np

G_CONV_GAIN = 0.5      # extra factor for the generator's conv weights (D and VGG19 use 1.0)
D_CONV_GAIN = 1.0
VGG_CONV_GAIN = 1.0


def read_keys(path):
    """Parse a key-list file: lines 'key<TAB>(d0, d1, ...)<TAB>param|buffer<TAB>numel'; '#' lines are comments."""
    out = []
    for line in open(path):
        line = line.rstrip('\n')
        if not line or line.startswith('#'):
            continue
        key, shp = line.split('\t')[:2]
        shape = tuple(int(s) for s in shp.strip('()').split(',') if s.strip())
        out.append((key, shape))
    return out


def make_state(keys_with_shapes, seed, conv_gain=1.0):
    """Return {key: float32 ndarray} following the recipe above (dict insertion order = key order)."""
    rng = np.random.default_rng(seed)
    state = {}
    for key, shape in keys_with_shapes:
        shape = tuple(int(s) for s in shape)
        z = rng.standard_normal(shape, dtype=np.float64)
        if key.endswith('weight_u') or key.endswith('weight_v'):
            v = z / math.sqrt(float(np.sum(z * z)))
        elif len(shape) == 4:
            fan_in = shape[1] * shape[2] * shape[3]
            v = z * (conv_gain * math.sqrt(2.0 / fan_in))
        elif len(shape) == 1 and key.endswith('.weight'):
            v = 1.0 + 0.1 * z
        elif len(shape) == 1 and key.endswith('.bias'):
            v = 0.1 * z
        else:
            raise ValueError(f'no recipe rule for {key} {shape}')
        state[key] = v.astype(np.float32)
    return state


def uniform_images(seed, shape=(2, 3, 128, 128)):
    """Test images: np.random.default_rng(seed).uniform(-1, 1, shape) (float64) cast to float32."""
    return np.random.default_rng(seed).uniform(-1.0, 1.0, size=shape).astype(np.float32)


def pred_maps(seed, shape=(2, 1, 8, 8)):
    """Fixed D prediction maps for the loss goldens: real = tanh(z1), fake = tanh(z2 - 0.3), z1 then z2 from one rng."""
    rng = np.random.default_rng(seed)
    real = np.tanh(rng.standard_normal(shape, dtype=np.float64)).astype(np.float32)
    fake = np.tanh(rng.standard_normal(shape, dtype=np.float64) - 0.3).astype(np.float32)
    return real, fake
