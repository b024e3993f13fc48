"""mrr_jax.faces: the crop rule and its inverse on synthetic points, detection on composed photos.

The photos are composed from scikit-image's astronaut (a public-domain NASA
portrait, 512x512) so that the truth is known: copies of her face at several
sizes and tilts on a plain or noisy background.
"""
import os
import subprocess
import sys

import numpy as np
import pytest
import skimage.data

from mrr_jax.faces import align, detect, paste

# The astronaut's eyes (pupil centres) and mouth (mid-point of the corners) in
# continuous pixel coordinates, read off a 7x nearest-neighbour zoom of the
# face with a 5 px grid; about +-0.7 px each.
ASTRONAUT_LEFT_EYE = (203.0, 100.8)
ASTRONAUT_RIGHT_EYE = (246.0, 103.2)
ASTRONAUT_MOUTH = (223.0, 141.0)
# libfacedetection's box on the untouched portrait (forehead to chin), which
# frames the face as it looks by eye.
ASTRONAUT_BOX = (178.0, 62.0, 267.0, 175.0)
# The pasted part of the portrait: an ellipse around the face and hair.
ASTRONAUT_ELLIPSE = ((222.0, 115.0), (72.0, 88.0))
# How far a found eye or mouth may be from the truth, in inter-ocular distances:
# two passes put these copies' points within 0.09, one pass within 0.13 (the
# benchmark's 90th percentiles on LFW: 0.12 and 0.22 for the eyes).
POINT_TOLERANCE = 0.15
ONE_PASS_TOLERANCE = 0.2
# The boxes of these copies overlap the true box by IoU 0.90 or more.
BOX_IOU = 0.75


def astronaut():
  return skimage.data.astronaut()


def ellipse_mask(shape, centre, radii, feather=6.0):
  y, x = np.mgrid[0:shape[0], 0:shape[1]] + 0.5
  r = np.sqrt(((x - centre[0]) / radii[0]) ** 2 + ((y - centre[1]) / radii[1]) ** 2)
  return np.clip((1 - r) * min(radii) / feather + 0.5, 0, 1).astype(np.float32)


def similarity(scale, angle_deg, src, dst):
  """Scales by `scale` and turns by angle_deg (clockwise on screen) about src, onto dst."""
  t = np.deg2rad(angle_deg)
  linear = scale * np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]])
  return np.concatenate([linear, (np.asarray(dst, np.float64) - linear @ src)[:, None]], 1)


def compose(size, placements, background='plain', seed=0):
  """A photo of astronaut faces and their truth.

  Args:
    size: the photo's (width, height).
    placements: (face width in px, tilt in degrees, (x, y) centre) per copy.
    background: 'plain' grey or 'noise'.
    seed: for the noise.

  Returns:
    (uint8 photo, list of dicts with box, left_eye, right_eye, mouth).
  """
  width, height = size
  rng = np.random.default_rng(seed)
  if background == 'plain':
    canvas = np.full((height, width, 3), 118.0)
  else:
    canvas = np.clip(rng.normal(128, 40, (height, width, 3)), 0, 255)
  src = astronaut()
  mask = ellipse_mask(src.shape, *ASTRONAUT_ELLIPSE)
  box_w = ASTRONAUT_BOX[2] - ASTRONAUT_BOX[0]
  box_h = ASTRONAUT_BOX[3] - ASTRONAUT_BOX[1]
  box_centre = np.array([(ASTRONAUT_BOX[0] + ASTRONAUT_BOX[2]) / 2,
                         (ASTRONAUT_BOX[1] + ASTRONAUT_BOX[3]) / 2])
  truth = []
  for face_w, angle, centre in placements:
    scale = face_w / box_w
    matrix = similarity(scale, angle, box_centre, centre)
    face = align.warp(src, matrix, size).astype(np.float64)
    alpha = align.warp(mask, matrix, size)[..., None]
    canvas = canvas * (1 - alpha) + face * alpha
    le, re, mouth = align.apply(matrix, [ASTRONAUT_LEFT_EYE, ASTRONAUT_RIGHT_EYE, ASTRONAUT_MOUTH])
    cx, cy = centre
    truth.append(dict(box=(cx - scale * box_w / 2, cy - scale * box_h / 2,
                           cx + scale * box_w / 2, cy + scale * box_h / 2),
                      left_eye=le, right_eye=re, mouth=mouth))
  return np.round(canvas).astype(np.uint8), truth


def iou(a, b):
  ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
  iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
  inter = ix * iy
  return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def assert_found(faces, truth, tolerance=POINT_TOLERANCE):
  """Every true face found once, box IoU >= BOX_IOU, eyes and mouth within tolerance."""
  assert len(faces) == len(truth), [f.box for f in faces]
  for t in truth:
    best = max(faces, key=lambda f, t=t: iou(f.box, t['box']))
    assert iou(best.box, t['box']) >= BOX_IOU, (best.box, t['box'])
    iod = np.linalg.norm(t['right_eye'] - t['left_eye'])
    for name in ('left_eye', 'right_eye', 'mouth'):
      error = np.linalg.norm(np.subtract(getattr(best, name), t[name])) / iod
      assert error <= tolerance, (name, error, getattr(best, name), t[name])


# ---------------------------------------------------------------------------
# align and paste: synthetic points.

def face_points(centre, iod, angle_deg):
  """An ideal face's (left eye, right eye, mouth): mouth 1.1 iod below the eyes' mid-point."""
  t = np.deg2rad(angle_deg)
  rot = np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]])
  local = np.array([[-iod / 2, 0.0], [iod / 2, 0.0], [0.0, 1.1 * iod]])
  return local @ rot.T + centre


@pytest.mark.parametrize('angle', [0.0, 7.5, -20.0, 35.0, 180.0])
@pytest.mark.parametrize('iod', [12.0, 40.0, 150.0])
def test_crop_matrix_puts_eyes_and_mouth_where_training_crops_have_them(angle, iod):
  points = face_points((400.0, 300.0), iod, angle)
  q = align.apply(align.crop_matrix(*points), points)
  size = align.CROP_SIZE
  np.testing.assert_allclose(q[:2, 1], align.EYE_ROW * size, atol=1e-9)
  np.testing.assert_allclose(q[2, 1], align.MOUTH_ROW * size, atol=1e-9)
  np.testing.assert_allclose([q[:2, 0].mean(), q[2, 0]], size / 2, atol=1e-9)
  assert q[0, 0] < q[1, 0]  # left_eye stays on the crop's left, even upside down


def test_the_rows_are_the_training_rule():
  assert align.EYE_ROW == pytest.approx(0.386, abs=5e-4)
  assert align.MOUTH_ROW == pytest.approx(0.671, abs=5e-4)


def test_crop_matrix_refuses_degenerate_faces():
  with pytest.raises(ValueError, match='degenerate'):
    align.crop_matrix((10, 10), (10, 10), (10, 30))
  with pytest.raises(ValueError, match='degenerate'):
    align.crop_matrix((0, 10), (20, 10), (10, 10))


def blobs(shape, points, sigma):
  """A float32 image of unit Gaussian blobs centred on points (continuous coordinates)."""
  y, x = np.mgrid[0:shape[0], 0:shape[1]] + 0.5
  img = np.zeros(shape, np.float32)
  for px, py in points:
    img += np.exp(-((x - px) ** 2 + (y - py) ** 2) / (2 * sigma ** 2))
  return img


def centroid(img, near, radius):
  """The intensity centroid of img within radius of `near` (continuous coordinates)."""
  y, x = np.mgrid[0:img.shape[0], 0:img.shape[1]] + 0.5
  w = np.where((x - near[0]) ** 2 + (y - near[1]) ** 2 <= radius ** 2, np.clip(img, 0, None), 0)
  return np.array([(w * x).sum() / w.sum(), (w * y).sum() / w.sum()])


@pytest.mark.parametrize('iod,angle', [(12.0, 0.0), (30.0, 14.0), (90.0, -20.0), (160.0, 8.0)])
def test_crop_and_paste_pixels_land_where_the_matrix_says(iod, angle):
  # Shrinking (iod 90, 160) goes through warp's antialiased pre-resize,
  # enlarging (12, 30) straight through PIL's affine: both must agree with apply().
  points = face_points((321.3, 240.7), iod, angle)
  photo = blobs((500, 640), points, sigma=0.12 * iod)
  matrix = align.crop_matrix(*points)
  crop = align.warp(photo, matrix, (align.CROP_SIZE, align.CROP_SIZE))
  expected = align.apply(matrix, points)
  crop_sigma = 0.12 * iod * np.sqrt(abs(np.linalg.det(matrix[:, :2])))
  for p in expected:
    np.testing.assert_allclose(centroid(crop, p, 3 * crop_sigma), p, atol=0.1)
  assert expected[0, 1] == pytest.approx(align.EYE_ROW * align.CROP_SIZE)
  # Back into the photo: each blob returns to its place within 0.5 px.
  back = align.warp(crop, align.invert(matrix), (640, 500))
  for p in points:
    np.testing.assert_allclose(centroid(back, p, 0.36 * iod), p, atol=0.5)


def test_crop_face_returns_the_crop_and_its_matrix():
  photo = (np.arange(480 * 640 * 3) % 251).astype(np.uint8).reshape(480, 640, 3)
  crop, matrix = align.crop_face(photo, (300, 200), (340, 204), (318, 248))
  assert crop.shape == (128, 128, 3) and crop.dtype == np.uint8
  np.testing.assert_allclose(matrix, align.crop_matrix((300, 200), (340, 204), (318, 248)))
  p = np.array([[1.5, -2.0], [700.0, 33.0]])
  np.testing.assert_allclose(align.apply(align.invert(matrix), align.apply(matrix, p)), p,
                             atol=1e-9)


def test_paste_face_puts_an_unchanged_crop_back_unchanged_inside():
  rng = np.random.default_rng(3)
  # A smooth photo, so resampling twice changes it little.
  small = rng.uniform(0, 255, (30, 40, 3)).astype(np.uint8)
  photo = align.warp(small, align.scaling(16.0), (640, 480))
  points = face_points((330.0, 220.0), 60.0, 12.0)
  crop, matrix = align.crop_face(photo, *points)
  out = paste.paste_face(photo, crop, matrix)
  assert out.shape == photo.shape and out.dtype == np.uint8
  inner = np.abs(out[200:240, 310:350].astype(int) - photo[200:240, 310:350]).mean()
  assert inner < 2.0
  # Far from the face nothing changed.
  np.testing.assert_array_equal(out[:40, :40], photo[:40, :40])
  # A bigger "super-resolved" crop pastes to the same place.
  white = np.full((256, 256, 3), 255, np.uint8)
  pasted = paste.paste_face(np.zeros_like(photo), white, matrix, crop_size=128, feather=0.0)
  corners = align.apply(align.invert(matrix), [[0, 0], [128, 128]])
  centre = corners.mean(0).astype(int)
  assert pasted[centre[1], centre[0]].tolist() == [255, 255, 255]


# ---------------------------------------------------------------------------
# detect: composed photos of the astronaut.

PLACEMENTS = ((40.0, -8.0, (110.0, 120.0)), (75.0, 12.0, (330.0, 170.0)),
              (150.0, 0.0, (640.0, 300.0)), (110.0, -15.0, (250.0, 470.0)))


@pytest.mark.parametrize('background', ['plain', 'noise'])
def test_detect_faces_finds_every_copy_with_its_eyes_and_mouth(background):
  photo, truth = compose((900, 640), PLACEMENTS, background)
  faces = detect.detect_faces(photo)
  assert_found(faces, truth)
  assert all(0.5 <= f.score <= 1 for f in faces)
  assert [f.score for f in faces] == sorted((f.score for f in faces), reverse=True)


def test_detect_faces_on_the_untouched_portrait():
  faces = detect.detect_faces(astronaut())
  truth = dict(box=ASTRONAUT_BOX, left_eye=np.array(ASTRONAUT_LEFT_EYE),
               right_eye=np.array(ASTRONAUT_RIGHT_EYE), mouth=np.array(ASTRONAUT_MOUTH))
  assert_found(faces, [truth])


def test_a_large_photo_is_detected_reduced_and_mapped_back():
  # 3000 px wide: detection runs on a copy reduced to 1280 px, points come
  # back in the full photo's coordinates (and the second pass refines them there).
  placements = ((120.0, 5.0, (700.0, 600.0)), (300.0, -10.0, (2200.0, 1100.0)))
  photo, truth = compose((3000, 1800), placements)
  assert_found(detect.detect_faces(photo), truth)
  one_pass = detect.detect_faces(photo, refine_size=None)
  assert_found(one_pass, truth, ONE_PASS_TOLERANCE)


def test_min_size_and_score_threshold_drop_faces():
  photo, truth = compose((900, 640), PLACEMENTS)
  kept = detect.detect_faces(photo, min_size=60)
  assert_found(kept, truth[1:])
  assert detect.detect_faces(photo, score_threshold=1.01) == []


@pytest.mark.parametrize('background', ['plain', 'noise'])
def test_no_faces_in_a_photo_without_faces(background):
  photo, _ = compose((640, 480), (), background)
  assert detect.detect_faces(photo) == []


def test_detect_faces_refuses_what_is_not_an_rgb_uint8_photo():
  with pytest.raises(ValueError, match='uint8 RGB'):
    detect.detect_faces(np.zeros((40, 40), np.uint8))
  with pytest.raises(ValueError, match='uint8 RGB'):
    detect.detect_faces(np.zeros((40, 40, 3), np.float32))


def test_overlapping_faces_are_one_face_the_most_confident():
  def face(box, score):
    return detect.Face(box=box, score=score, left_eye=(0, 0), right_eye=(1, 0), mouth=(0.5, 1))
  faces = [face((0, 0, 10, 12), 0.6), face((1, 0, 11, 12), 0.9), face((30, 0, 40, 12), 0.7)]
  assert [f.score for f in detect._distinct(faces)] == [0.9, 0.7]  # pylint: disable=protected-access


def test_detected_faces_crop_as_the_training_data_were():
  photo, truth = compose((900, 640), PLACEMENTS)
  for face in detect.detect_faces(photo):
    crop, matrix = align.crop_face(photo, face.left_eye, face.right_eye, face.mouth)
    assert crop.shape == (128, 128, 3)
    t = max(truth, key=lambda t, face=face: iou(face.box, t['box']))
    eyes, mouth = align.apply(matrix, [(t['left_eye'] + t['right_eye']) / 2, t['mouth']])
    # The true points land near 38.6% / 67% of the height, on the centre line.
    np.testing.assert_allclose(eyes, [64, align.EYE_ROW * 128], atol=0.2 * 128 / 3.5)
    np.testing.assert_allclose(mouth, [64, align.MOUTH_ROW * 128], atol=0.2 * 128 / 3.5)


def test_detection_imports_no_tensorflow():
  code = ('import sys, numpy as np\n'
          'from mrr_jax import faces\n'
          'faces.detect_faces(np.zeros((64, 64, 3), np.uint8))\n'
          "bad = [m for m in ('tensorflow', 'jax') if m in sys.modules]\n"
          'assert not bad, bad\n')
  repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  subprocess.run([sys.executable, '-c', code], check=True, cwd=repo)
