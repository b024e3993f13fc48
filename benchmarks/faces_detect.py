r"""Face detectors on group photos composed from LFW faces, with known eyes and mouths.

Each photo is a background (flat, gradient, noise or one of three textures)
with 2 to 6 LFW faces pasted through an elliptical soft mask, each at a face
width drawn log-uniformly from 30 to 200 px and tilted by up to 20 degrees,
then saved as a JPEG (quality 85 to 95) as real photos are. The ground truth
is carried through the same transform from fixed positions in the 250x250
LFW-deepfunneled sources (see LFW_* below), so it carries LFW's own
alignment spread: the 'sources' columns give each detector's error on the
untouched sources, the floor of what these errors can show.

A detection matches a face when its box centre lies within half the face's
width of the true box centre and its width is within a factor 2 of the true
width (box conventions differ between detectors, so no IoU rule), one to one,
nearest first. Some LFW sources hold a bystander's face inside the ellipse:
found, it counts against precision (most of libfacedetection's unmatched
detections are such faces, looked at in the --draw pictures). Eye error: the
mean distance of the two eyes from the truth; mouth error: the distance of the
mouth mid-point; both as a fraction of the true inter-ocular distance, median
and 90th percentile over matched faces. Time: the detector's wall time per
photo on this machine (the header says how many CPUs and OMP_NUM_THREADS);
'start s': loading it, imports included.

The detectors: mrr_jax is mrr_jax.faces.detect_faces as shipped
(libfacedetection, two passes, one OpenMP thread); yuface is libfacedetection's
one pass on the full photo; haar is OpenCV's frontal-face and eye cascades
(the mouth put below the eyes at the LFW proportion); dlib is its HOG detector
(upsampled once) with the 68-point shape predictor; mtcnn is MTCNN.

Each detector runs in its own subprocess (so TensorFlow, which MTCNN needs,
can be seen in sys.modules there and in no other); one that cannot be
imported is listed as missing. Only mrr_jax's (libfacedetection) is in
requirements.txt; for the others install opencv-python-headless<5 (haar),
dlib-bin and face-recognition-models (dlib), mtcnn with joblib and lz4 (mtcnn;
it uses the project's TensorFlow), for example with pip install --target DIR,
and put DIR on PYTHONPATH.

  python benchmarks/faces_detect.py --lfw LFW_DIR --photos 100
  python benchmarks/faces_detect.py --lfw LFW_DIR --photos 5 --draw /tmp/faces

Nothing is written into the repository (--draw writes drawn photos where it is told).
"""
import argparse
import glob
import io
import json
import os
import subprocess
import sys
import time

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
sys.dont_write_bytecode = True  # not even __pycache__ lands in the repository
from mrr_jax.faces import align  # pylint: disable=g-import-not-at-top,wrong-import-position

# Where LFW-deepfunneled puts the face in its 250x250 photos, in continuous
# pixel coordinates: for each point the median over detectors of each
# detector's median over 598 random lfw_dev photos (libfacedetection at 1x and
# 2x, dlib's 68 landmarks, MTCNN; their medians agree within 1.5 px), checked
# by eye on the mean face and single photos. The photos spread around these by
# a median of 5-7% of the inter-ocular distance for the eyes and 9% for the
# mouth (faces differ and the funnelling is not exact).
LFW_LEFT_EYE = (104.5, 112.8)
LFW_RIGHT_EYE = (146.5, 111.8)
LFW_MOUTH = (126.6, 157.6)
# The true box: the libfacedetection and MTCNN median box (forehead to chin).
LFW_BOX = (79.0, 66.0, 171.0, 188.0)
# The pasted part of each source: an ellipse around the face (it keeps the
# hair and chin, and leaves out the people at the edges of some LFW photos).
LFW_ELLIPSE = ((125.0, 128.0), (78.0, 100.0))
DETECTORS = ('mrr_jax', 'yuface', 'haar', 'dlib', 'mtcnn')
SIZE_BINS = ((30, 50), (50, 100), (100, 201))


# ---------------------------------------------------------------------------
# Photos.

def background(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
  """A (height, width, 3) float background of a random kind."""
  kind = rng.choice(['flat', 'gradient', 'noise', 'stripes', 'checks', 'clouds'])
  a, b = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
  y, x = np.mgrid[0:height, 0:width].astype(np.float64)
  if kind == 'flat':
    return np.broadcast_to(a, (height, width, 3)).copy()
  if kind == 'gradient':
    t = np.cos(rng.uniform(0, np.pi)) * x / width + np.sin(rng.uniform(0, np.pi)) * y / height
    t = (t - t.min()) / max(t.max() - t.min(), 1e-9)
    return a + t[..., None] * (b - a)
  if kind == 'noise':
    return a + rng.normal(0, rng.uniform(10, 60), (height, width, 3))
  if kind == 'stripes':
    angle, period = rng.uniform(0, np.pi), rng.uniform(4, 60)
    t = 0.5 + 0.5 * np.sin(2 * np.pi * (np.cos(angle) * x + np.sin(angle) * y) / period)
    return a + t[..., None] * (b - a)
  if kind == 'checks':
    cell = rng.uniform(6, 80)
    t = ((x // cell + y // cell) % 2)
    return a + t[..., None] * (b - a)
  noise = Image.fromarray(rng.uniform(0, 255, (height // 8 + 1, width // 8 + 1)).astype(np.uint8))
  t = np.asarray(noise.resize((width, height), Image.BICUBIC).filter(
      ImageFilter.GaussianBlur(rng.uniform(2, 12))), np.float64) / 255
  t = (t - t.min()) / max(t.max() - t.min(), 1e-9)
  return a + t[..., None] * (b - a)


def ellipse_mask(size: int = 250, feather: float = 8.0) -> np.ndarray:
  """LFW_ELLIPSE as a float32 mask in [0, 1] with a soft edge about `feather` px wide."""
  (cx, cy), (rx, ry) = LFW_ELLIPSE
  y, x = np.mgrid[0:size, 0:size] + 0.5
  r = np.sqrt(((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2)
  return np.clip((1 - r) * min(rx, ry) / feather + 0.5, 0, 1).astype(np.float32)


def similarity(scale: float, angle_deg: float, src_centre, dst_centre) -> np.ndarray:
  """Scales by `scale`, turns by angle_deg (clockwise on screen) about src_centre onto dst."""
  t = np.deg2rad(angle_deg)
  linear = scale * np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]])
  return np.concatenate([linear, (np.asarray(dst_centre) - linear @ src_centre)[:, None]], 1)


def compose_photo(rng: np.random.Generator, sources, mask: np.ndarray):
  """One composed photo and its faces' truth: (uint8 photo, list of dicts)."""
  width = int(rng.integers(640, 1281))
  height = int(width * rng.uniform(0.6, 1.0))
  canvas = np.clip(background(rng, width, height), 0, 255)
  truth, placed = [], []
  box_w = LFW_BOX[2] - LFW_BOX[0]
  box_centre = np.array([(LFW_BOX[0] + LFW_BOX[2]) / 2, (LFW_BOX[1] + LFW_BOX[3]) / 2])
  for _ in range(int(rng.integers(2, 7))):
    face_w = float(np.exp(rng.uniform(np.log(30), np.log(200))))
    scale, angle = face_w / box_w, float(rng.uniform(-20, 20))
    radius = scale * max(LFW_ELLIPSE[1]) + 4
    for _ in range(50):
      centre = rng.uniform([radius, radius], [width - radius, height - radius])
      if all(np.linalg.norm(centre - c) > radius + r for c, r in placed):
        break
    else:
      continue
    placed.append((centre, radius))
    path = sources[int(rng.integers(len(sources)))]
    src = np.asarray(Image.open(path).convert('RGB'))
    matrix = similarity(scale, angle, box_centre, centre)
    face = align.warp(src, matrix, (width, height)).astype(np.float64)
    alpha = align.warp(mask, matrix, (width, height))[..., None]
    canvas = canvas * (1 - alpha) + face * alpha
    points = align.apply(matrix, [LFW_LEFT_EYE, LFW_RIGHT_EYE, LFW_MOUTH])
    c = align.apply(matrix, box_centre)
    truth.append(dict(box=(c[0] - face_w / 2, c[1] - face_w * 0.663, c[0] + face_w / 2,
                           c[1] + face_w * 0.663),
                      centre=c.tolist(), width=face_w, angle=angle, points=points.tolist(),
                      source=os.path.basename(path)))
  buf = io.BytesIO()
  Image.fromarray(np.round(canvas).astype(np.uint8)).save(buf, 'JPEG',
                                                         quality=int(rng.integers(85, 96)))
  return np.asarray(Image.open(buf).convert('RGB')), truth


def lfw_sources(lfw_dir: str):
  paths = sorted(glob.glob(os.path.join(lfw_dir, '*', '*.jpg')))
  if not paths:
    raise SystemExit(f'error: no <person>/*.jpg under {lfw_dir}')
  return paths


# ---------------------------------------------------------------------------
# Detectors: each returns a function rgb -> list of (box, score, left_eye,
# right_eye, mouth) in continuous pixel coordinates.

def make_detector(name: str):
  """The detector called `name` (imports happen here, in the subprocess)."""
  if name in ('mrr_jax', 'yuface'):
    from mrr_jax.faces import detect  # pylint: disable=g-import-not-at-top
    # yuface: libfacedetection alone, one pass on the full photo as the package gives it.
    options = {} if name == 'mrr_jax' else dict(max_side=None, refine_size=None)

    def run(rgb):
      return [(f.box, f.score, f.left_eye, f.right_eye, f.mouth)
              for f in detect.detect_faces(rgb, **options)]
    return run
  if name == 'haar':
    return haar_detector()
  if name == 'dlib':
    return dlib_detector()
  if name == 'mtcnn':
    return mtcnn_detector()
  raise ValueError(name)


# Haar finds no mouth: it is put below the eyes' mid-point, perpendicular to
# the eye line, at the LFW ratio of eye-mouth distance to inter-ocular distance.
_LFW_MOUTH_PER_IOD = (
    np.linalg.norm(np.subtract(LFW_MOUTH, np.add(LFW_LEFT_EYE, LFW_RIGHT_EYE) / 2))
    / np.linalg.norm(np.subtract(LFW_RIGHT_EYE, LFW_LEFT_EYE)))
# Where the eyes sit in OpenCV's frontal-face box when the eye cascade misses
# (fractions of the box, measured on the LFW sources).
_HAAR_EYES = ((0.32, 0.40), (0.69, 0.39))


def haar_detector():
  """OpenCV's frontal-face and eye cascades, as the MRRNet authors cropped with them."""
  import cv2  # pylint: disable=g-import-not-at-top
  faces = cv2.CascadeClassifier(os.path.join(cv2.data.haarcascades,
                                             'haarcascade_frontalface_default.xml'))
  eyes = cv2.CascadeClassifier(os.path.join(cv2.data.haarcascades, 'haarcascade_eye.xml'))

  def run(rgb):
    gray = cv2.equalizeHist(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY))
    found, _, weights = faces.detectMultiScale3(gray, 1.1, 5, minSize=(24, 24),
                                                outputRejectLevels=True)
    out = []
    for (x, y, w, h), score in zip(found, np.ravel(weights) if len(found) else []):
      upper = gray[y:y + h * 6 // 10, x:x + w]
      cands = eyes.detectMultiScale(upper, 1.1, 3, minSize=(max(w // 8, 4),) * 2)
      guess = [np.array([x + fx * w, y + fy * h]) for fx, fy in _HAAR_EYES]
      pair = list(guess)
      for ex, ey, ew, eh in cands:
        c = np.array([x + ex + ew / 2, y + ey + eh / 2])
        side = 0 if c[0] < x + w / 2 else 1
        if np.linalg.norm(c - guess[side]) < np.linalg.norm(pair[side] - guess[side]) or (
            pair[side] is guess[side]):
          pair[side] = c
      le, re = pair
      line = re - le
      down = np.array([-line[1], line[0]])
      mouth = (le + re) / 2 + _LFW_MOUTH_PER_IOD * down
      out.append(((x, y, x + w, y + h), float(score), tuple(le), tuple(re), tuple(mouth)))
    return out
  return run


def dlib_detector():
  """dlib's HOG detector (one 2x upsampling, for faces down to about 40 px) and 68 landmarks."""
  import dlib  # pylint: disable=g-import-not-at-top
  import face_recognition_models  # pylint: disable=g-import-not-at-top
  detector = dlib.get_frontal_face_detector()
  predictor = dlib.shape_predictor(face_recognition_models.pose_predictor_model_location())

  def run(rgb):
    out = []
    boxes, scores, _ = detector.run(rgb, 1, 0.0)
    for r, score in zip(boxes, scores):
      q = np.array([(p.x, p.y) for p in predictor(rgb, r).parts()], np.float64) + 0.5
      out.append(((r.left(), r.top(), r.right() + 1, r.bottom() + 1), float(score),
                  tuple(q[36:42].mean(0)), tuple(q[42:48].mean(0)),
                  tuple((q[48] + q[54]) / 2)))
    return out
  return run


def mtcnn_detector():
  """MTCNN (TensorFlow): five points, like libfacedetection."""
  from mtcnn import MTCNN  # pylint: disable=g-import-not-at-top
  model = MTCNN()

  def run(rgb):
    out = []
    for f in model.detect_faces(rgb):
      x, y, w, h = f['box']
      k = {n: np.asarray(p, np.float64) + 0.5 for n, p in f['keypoints'].items()}
      out.append(((x, y, x + w, y + h), float(f['confidence']), tuple(k['left_eye']),
                  tuple(k['right_eye']), tuple((k['mouth_left'] + k['mouth_right']) / 2)))
    return out
  return run


# ---------------------------------------------------------------------------
# Scoring.

def match(truth, found):
  """Pairs (truth index, found index) by the centre rule, nearest first, one to one."""
  pairs = []
  for i, t in enumerate(truth):
    for j, f in enumerate(found):
      box = f[0]
      c = np.array([(box[0] + box[2]) / 2, (box[1] + box[3]) / 2])
      dist = np.linalg.norm(c - t['centre'])
      ratio = (box[2] - box[0]) / t['width']
      if dist <= 0.5 * t['width'] and 0.5 <= ratio <= 2:
        pairs.append((dist, i, j))
  used_t, used_f, out = set(), set(), []
  for _, i, j in sorted(pairs):
    if i not in used_t and j not in used_f:
      used_t.add(i)
      used_f.add(j)
      out.append((i, j))
  return out


def point_errors(points, found):
  """(eye error, mouth error) over the inter-ocular distance of the true points."""
  le, re, mouth = np.asarray(points)
  iod = np.linalg.norm(re - le)
  eye = (np.linalg.norm(np.subtract(found[2], le)) + np.linalg.norm(np.subtract(found[3], re))) / 2
  return eye / iod, np.linalg.norm(np.subtract(found[4], mouth)) / iod


def evaluate(name: str, lfw_dir: str, photos: int, seed: int, draw_dir=None):
  """Runs one detector over the composed photos and the untouched sources; a dict of results."""
  t0 = time.perf_counter()
  run = make_detector(name)
  run(np.zeros((64, 64, 3), np.uint8))  # loads models before the clock starts
  startup = time.perf_counter() - t0
  sources = lfw_sources(lfw_dir)
  rng = np.random.default_rng(seed)
  mask = ellipse_mask()
  faces, rows, seconds = [], 0, 0.0
  n_found = n_matched = 0
  for k in range(photos):
    rgb, truth = compose_photo(rng, sources, mask)
    start = time.perf_counter()
    found = run(rgb)
    seconds += time.perf_counter() - start
    pairs = dict(match(truth, found))
    n_found += len(found)
    n_matched += len(pairs)
    for i, t in enumerate(truth):
      errs = point_errors(t['points'], found[pairs[i]]) if i in pairs else (np.nan, np.nan)
      faces.append((t['width'], abs(t['angle']), i in pairs) + tuple(errs))
    if draw_dir and k < 10:
      draw(rgb, truth, found, os.path.join(draw_dir, f'{name}_{k:02d}.png'))
    rows += 1
  # The floor: the same detector on untouched sources (one face, centred).
  src_rng = np.random.default_rng(seed + 1)
  floor = []
  truth_src = [LFW_LEFT_EYE, LFW_RIGHT_EYE, LFW_MOUTH]
  centre = [(LFW_BOX[0] + LFW_BOX[2]) / 2, (LFW_BOX[1] + LFW_BOX[3]) / 2]
  for i in src_rng.choice(len(sources), min(200, len(sources)), replace=False):
    found = run(np.asarray(Image.open(sources[i]).convert('RGB')))
    pairs = match([dict(centre=centre, width=LFW_BOX[2] - LFW_BOX[0])], found)
    if pairs:
      floor.append(point_errors(truth_src, found[pairs[0][1]]))
  return dict(name=name, faces=faces, found=n_found, matched=n_matched, photos=rows,
              seconds=seconds, startup=startup, floor=floor,
              tensorflow=any(m == 'tensorflow' or m.startswith('tensorflow.') for m in sys.modules))


def draw(rgb, truth, found, path):
  """Saves the photo with truth (green points) and detections (red boxes, yellow points)."""
  im = Image.fromarray(rgb)
  d = ImageDraw.Draw(im)
  for t in truth:
    for x, y in t['points']:
      d.ellipse((x - 3, y - 3, x + 3, y + 3), outline=(0, 255, 0))
  for box, score, *points in found:
    d.rectangle(tuple(float(v) for v in box), outline=(255, 0, 0), width=2)
    d.text((float(box[0]), float(box[1]) - 12), f'{score:.2f}', fill=(255, 0, 0))
    for x, y in points:
      d.ellipse((x - 2, y - 2, x + 2, y + 2), fill=(255, 255, 0))
  os.makedirs(os.path.dirname(path), exist_ok=True)
  im.save(path)


# ---------------------------------------------------------------------------
# The table.

def summary_row(r) -> str:
  """One table row from a subprocess's result dict."""
  faces = np.array(r['faces'], np.float64).reshape(-1, 5)
  hit = faces[:, 2] > 0
  recall = hit.mean()
  precision = r['matched'] / max(r['found'], 1)
  bins = [hit[(faces[:, 0] >= lo) & (faces[:, 0] < hi)].mean() for lo, hi in SIZE_BINS]
  tilted = hit[faces[:, 1] > 10].mean()
  eye, mouth = faces[hit, 3], faces[hit, 4]
  floor = np.array(r['floor']).reshape(-1, 2)
  q = lambda v, p: np.percentile(v, p) if len(v) else np.nan
  return (f"| {r['name']} | {recall:.3f} | {precision:.3f} | "
          + ' | '.join(f'{b:.2f}' for b in bins) + f' | {tilted:.2f} | '
          f'{q(eye, 50):.3f} / {q(eye, 90):.3f} | {q(mouth, 50):.3f} / {q(mouth, 90):.3f} | '
          f'{q(floor[:, 0], 50):.3f} / {q(floor[:, 1], 50):.3f} | '
          f"{1e3 * r['seconds'] / r['photos']:.0f} | {r['startup']:.1f} | "
          f"{'yes' if r['tensorflow'] else 'no'} |")


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--lfw', required=True, help='an LFW folder: <person>/<person>_NNNN.jpg')
  parser.add_argument('--photos', type=int, default=100)
  parser.add_argument('--seed', type=int, default=0)
  parser.add_argument('--detectors', default=','.join(DETECTORS))
  parser.add_argument('--draw', help='a folder for the first 10 photos drawn per detector')
  parser.add_argument('--only', help=argparse.SUPPRESS)  # the subprocess: one detector, JSON out
  args = parser.parse_args(argv)
  if args.draw and os.path.realpath(args.draw).startswith(REPO + os.sep):
    raise SystemExit('error: --draw must be outside the repository (LFW is research-only data)')
  if args.only:
    print(json.dumps(evaluate(args.only, args.lfw, args.photos, args.seed, args.draw)))
    return
  lfw_sources(args.lfw)
  print(f'{args.photos} composed photos, seed {args.seed}; errors: median / 90th percentile '
        'over matched faces, as a fraction of the inter-ocular distance; '
        f"{os.cpu_count()} CPUs, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}")
  print('| detector | recall | precision | recall 30-50 px | 50-100 px | 100-200 px | '
        'tilt > 10 deg | eye error | mouth error | sources eye / mouth | ms / photo | '
        'start s | TensorFlow |')
  print('|---' * 13 + '|')
  for name in args.detectors.split(','):
    cmd = [sys.executable, os.path.abspath(__file__), '--only', name, '--lfw', args.lfw,
           '--photos', str(args.photos), '--seed', str(args.seed)]
    if args.draw:
      cmd += ['--draw', args.draw]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='3')
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    lines = proc.stdout.strip().splitlines()
    if proc.returncode or not lines:
      error = (proc.stderr.strip().splitlines() or ['no output'])[-1]
      print(f'| {name} | not run: {error} |')
      continue
    print(summary_row(json.loads(lines[-1])), flush=True)


if __name__ == '__main__':
  main()
