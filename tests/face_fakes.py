"""Small fake face data in each source's real file layout, for the data tests."""
import io
import os
import zipfile
from typing import Dict, List

import numpy as np
from PIL import Image


def smooth_photo(seed: int, width: int, height: int) -> np.ndarray:
  """A photo-like uint8 RGB image: smooth colour gradients, blobs and mild noise."""
  rng = np.random.default_rng(seed)
  y, x = np.mgrid[0:height, 0:width].astype(np.float64)
  img = np.zeros((height, width, 3))
  for c in range(3):
    a, b, p = rng.uniform(0.01, 0.08, 3)
    img[..., c] = 128 + 60 * np.sin(a * x + p * 7) * np.cos(b * y)
    for _ in range(3):
      cx, cy, r = rng.uniform(0, width), rng.uniform(0, height), rng.uniform(5, width / 3)
      img[..., c] += rng.uniform(-60, 60) * np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * r * r))
  img += rng.normal(0, 3, img.shape)
  return np.clip(img + 0.5, 0, 255).astype(np.uint8)


def encode(image: np.ndarray, fmt: str = 'JPEG', mode: str = 'RGB') -> bytes:
  """Image bytes in a format and PIL mode (L, RGBA, CMYK, ...)."""
  buf = io.BytesIO()
  img = Image.fromarray(image)
  if mode != 'RGB':
    img = img.convert(mode)
  img.save(buf, fmt, **({'quality': 95} if fmt == 'JPEG' else {}))
  return buf.getvalue()


CORRUPT = b'this is not an image'


def truncated(image: np.ndarray) -> bytes:
  data = encode(image, 'PNG')
  return data[:len(data) // 2]


def write(path: str, data: bytes) -> None:
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with open(path, 'wb') as f:
    f.write(data)


def celeba(root: str, files: Dict[str, bytes], partition: Dict[str, int],
           landmarks: Dict[str, List[int]]) -> None:
  """img_align_celeba.zip (members under img_align_celeba/) + the two list files."""
  os.makedirs(root, exist_ok=True)
  with zipfile.ZipFile(os.path.join(root, 'img_align_celeba.zip'), 'w') as z:
    for name, data in files.items():
      z.writestr(f'img_align_celeba/{name}', data)
  with open(os.path.join(root, 'list_landmarks_align_celeba.txt'), 'w') as f:
    f.write(f'{len(landmarks)}\n')
    f.write('lefteye_x lefteye_y righteye_x righteye_y nose_x nose_y '
            'leftmouth_x leftmouth_y rightmouth_x rightmouth_y\n')
    for name, pts in landmarks.items():
      f.write(name + ' ' + ' '.join(f'{p:4d}' for p in pts) + '\n')
  with open(os.path.join(root, 'list_eval_partition.txt'), 'w') as f:
    for name, p in partition.items():
      f.write(f'{name} {p}\n')


def helen_points(eye_y: float, mouth_y: float, cx: float) -> np.ndarray:
  """194 points whose eye contours (114-153) and lips (58-113) have the given centres."""
  pts = np.zeros((194, 2))
  pts[:, 0] = cx
  pts[:, 1] = (eye_y + mouth_y) / 2
  for start, y in ((114, eye_y), (134, eye_y), (58, mouth_y), (86, mouth_y)):
    n = 20 if start >= 114 else 28
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    pts[start:start + n, 0] = cx + 10 * np.cos(t)
    pts[start:start + n, 1] = y + 4 * np.sin(t)
  return pts


def helen(root: str, zips: Dict[str, Dict[str, bytes]], points: Dict[str, np.ndarray],
          train: List[str], test: List[str]) -> None:
  """helen_N.zip files, annotation.zip (annotation/N.txt) and the name lists."""
  os.makedirs(root, exist_ok=True)
  for zip_name, files in zips.items():
    with zipfile.ZipFile(os.path.join(root, zip_name), 'w') as z:
      for name, data in files.items():
        z.writestr(f'{zip_name[:-4]}/{name}', data)
  with zipfile.ZipFile(os.path.join(root, 'annotation.zip'), 'w') as z:
    for i, (name, pts) in enumerate(points.items()):
      z.writestr(f'annotation/{i + 1}.txt',
                 name + '\n' + ''.join(f'{x:.3f} , {y:.3f}\n' for x, y in pts))
  for split, names in (('train', train), ('test', test)):
    with open(os.path.join(root, f'{split}names.txt'), 'w') as f:
      f.write(''.join(n + '\n' for n in names))
