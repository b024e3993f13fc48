"""mrr_jax.restore on composed photos of the astronaut: faces found, pasted back, nothing else touched.

The generator is a small random export: its faces are not good, but they are
different from the input, which is what the paste-back checks need.
"""
import io
import json
import os
import subprocess
import sys

import numpy as np
from PIL import Image
import pytest

from mrr_jax import restore
from mrr_jax.faces import align, paste, photos
from mrr_jax.models import init as model_init
from mrr_jax.weights import export_format
from tests import test_faces

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Three faces: small, medium, tilted; on a plain background.
THREE = ((36.0, -6.0, (120.0, 110.0)), (80.0, 10.0, (330.0, 170.0)), (110.0, -18.0, (560.0, 260.0)))


@pytest.fixture(scope='module')
def model(tmp_path_factory):
  root = tmp_path_factory.mktemp('restore_model')
  generator = export_format.build_generator({'base_channels': 4, 'max_channels': 8, 'num_res': 1})
  return export_format.save_generator(str(root / 'export'), generator,
                                      model_init.init_generator(generator, 0))


@pytest.fixture(scope='module')
def three_faces():
  return test_faces.compose((720, 420), THREE)


def _footprint(shape, records):
  """True where any face's 128-crop square lands in the photo (what paste may change)."""
  h, w = shape[:2]
  y, x = np.mgrid[0:h, 0:w] + 0.5
  inside = np.zeros((h, w), bool)
  for r in records:
    lm = r['landmarks']
    matrix = align.crop_matrix(lm['left_eye'], lm['right_eye'], lm['mouth'])
    q = align.apply(matrix, np.stack([x.ravel(), y.ravel()], 1)).reshape(h, w, 2)
    inside |= (q[..., 0] > -2) & (q[..., 0] < 130) & (q[..., 1] > -2) & (q[..., 1] < 130)
  return inside


def test_restore_finds_the_faces_and_changes_nothing_else(model, three_faces, tmp_path):
  photo, truth = three_faces
  Image.fromarray(photo).save(tmp_path / 'group.png')
  out = tmp_path / 'out'
  report = restore.run(model, str(tmp_path / 'group.png'), str(out))
  assert report['written'] == ['group.png'] and not report['skipped']
  faces = json.loads((out / 'faces.json').read_text())['group.png']
  assert len(faces) == 3
  for t in truth:
    best = max(faces, key=lambda f, t=t: test_faces.iou(f['box'], t['box']))
    assert test_faces.iou(best['box'], t['box']) >= test_faces.BOX_IOU
    iod = np.linalg.norm(t['right_eye'] - t['left_eye'])
    for name in ('left_eye', 'right_eye', 'mouth'):
      err = np.linalg.norm(np.subtract(best['landmarks'][name], t[name])) / iod
      assert err <= test_faces.POINT_TOLERANCE, (name, err)
  restored = np.asarray(Image.open(out / 'group.png'))
  assert restored.shape == photo.shape
  inside = _footprint(photo.shape, faces)
  np.testing.assert_array_equal(restored[~inside], photo[~inside])
  for f in faces:  # each face changed (a random generator's output is not the photo)
    x0, y0, x1, y1 = (int(v) for v in f['box'])
    assert np.abs(restored[y0:y1, x0:x1].astype(int) - photo[y0:y1, x0:x1]).mean() > 2
  strips = sorted(os.listdir(out / 'strips'))
  assert strips == ['group_0.png', 'group_1.png', 'group_2.png']
  strip = np.asarray(Image.open(out / 'strips' / 'group_0.png'))
  assert strip.shape[0] >= 128 and strip.shape[1] >= 3 * 128  # LR x8 | bicubic | SR


def test_the_crops_are_training_crops_and_tiny_faces_are_taken_as_lr(three_faces):
  photo, _ = three_faces
  from mrr_jax.faces import detect
  faces = detect.detect_faces(photo)
  lr, matrix, side, as_lr = restore.face_lr(photo, faces[0])
  assert lr.shape == (16, 16, 3) and not as_lr
  hr = align.warp(photo, matrix, (128, 128))
  np.testing.assert_array_equal(lr, np.asarray(Image.fromarray(hr).resize((16, 16),
                                                                        Image.BICUBIC)))
  small = np.asarray(Image.fromarray(photo).resize((72, 42), Image.BICUBIC))
  tiny = detect.Face(box=(0, 0, 5, 5), score=1.0, left_eye=(30.0, 20.0),
                     right_eye=(33.0, 20.0), mouth=(31.5, 23.5))
  lr, _, side, as_lr = restore.face_lr(small, tiny)
  assert as_lr and side <= 16 and lr.shape == (16, 16, 3)


def test_paste_has_no_step_across_the_seam_on_flat_photos():
  photo = np.full((300, 400, 3), (40, 90, 160), np.uint8)
  face = np.full((128, 128, 3), (220, 200, 10), np.uint8)
  points = test_faces.face_points((200.0, 140.0), 40.0, 17.0)
  matrix = align.crop_matrix(*points)
  out = paste.paste_face(photo, face, matrix, feather=0.1)
  side = 128 / np.linalg.norm(matrix[0, :2])  # crop side in photo px
  ramp_px = 0.1 * side
  biggest_step = np.abs(np.diff(out.astype(int), axis=1)).max()
  biggest_step = max(biggest_step, np.abs(np.diff(out.astype(int), axis=0)).max())
  jump = 220 - 40  # the largest channel difference between face and photo
  # A linear ramp over ramp_px pixels moves at most jump / ramp_px per pixel (+1 rounding,
  # x2 where the ramps of two sides meet at a corner).
  assert biggest_step <= 2 * jump / ramp_px + 1, (biggest_step, jump / ramp_px)
  centre = align.apply(align.invert(matrix), [[64, 64]])[0].astype(int)
  assert out[centre[1], centre[0]].tolist() == [220, 200, 10]
  assert out[0, 0].tolist() == [40, 90, 160] and out[-1, -1].tolist() == [40, 90, 160]


def test_colour_match_moves_the_mean_and_keeps_the_detail():
  rng = np.random.default_rng(0)
  reference = np.full((128, 128, 3), 100, np.uint8)
  detail = rng.integers(-20, 21, (128, 128, 3))
  face = np.clip(130 + detail, 0, 255).astype(np.uint8)  # tinted by +30
  matched = paste.match_colour(face, reference)
  np.testing.assert_array_equal(matched.astype(int) - face.astype(int),
                                np.full((128, 128, 3), -30))


def test_photos_without_faces_bad_files_copy_or_skip(model, tmp_path):
  empty, _ = test_faces.compose((320, 240), (), 'noise')
  inp = tmp_path / 'in'
  inp.mkdir()
  Image.fromarray(empty).save(inp / 'wall.jpg', quality=95)
  (inp / 'broken.png').write_bytes(b'\x89PNG\r\n\x1a\n not really')
  with pytest.raises(restore.RestoreError, match='nothing restored'):
    restore.run(model, str(inp), str(tmp_path / 'a'), no_face='skip')
  report = restore.run(model, str(inp), str(tmp_path / 'b'), no_face='copy')
  assert report['written'] == ['wall.jpg']
  assert [s['name'] for s in report['skipped']] == ['broken.png']
  assert 'broken.png' in report['skipped'][0]['reason']
  assert any('no face found, copied unchanged' in w for w in report['warnings'])
  assert json.loads((tmp_path / 'b' / 'faces.json').read_text()) == {'wall.jpg': []}


def test_output_checked_before_any_work(model, three_faces, tmp_path):
  photo, _ = three_faces
  Image.fromarray(photo).save(tmp_path / 'p.png')
  mine = tmp_path / 'mine'
  mine.mkdir()
  (mine / 'holiday.jpg').write_bytes(b'my own photo')
  with pytest.raises(restore.RestoreError, match='--output'):
    restore.run(model, str(tmp_path / 'p.png'), str(mine))
  assert os.listdir(mine) == ['holiday.jpg']
  with pytest.raises(restore.RestoreError, match='folder the photos are in'):
    restore.run(model, str(tmp_path / 'p.png'), str(tmp_path))


def _jpeg(rgb, **kw):
  buf = io.BytesIO()
  Image.fromarray(rgb).save(buf, 'JPEG', **kw)
  return buf.getvalue()


@pytest.mark.parametrize('quality', [15, 40, 75, 95])
def test_jpeg_quality_estimate(quality, three_faces):
  photo = photos.jpeg_quality(Image.open(io.BytesIO(_jpeg(three_faces[0], quality=quality)))
                              .quantization)
  assert abs(photo - quality) <= 1


def test_exif_rotated_cmyk_16bit_and_heavy_jpeg(model, three_faces, tmp_path):
  photo, _ = three_faces
  inp = tmp_path / 'in'
  inp.mkdir()
  # Stored sideways with orientation 6 (the camera turned): upright is `photo`.
  sideways = Image.fromarray(photo).transpose(Image.Transpose.ROTATE_90)
  exif = Image.Exif()
  exif[0x0112] = 6
  sideways.save(inp / 'phone.jpg', quality=92, exif=exif.tobytes())
  Image.fromarray(photo).convert('CMYK').save(inp / 'print.jpg', quality=92)
  grey16 = (np.asarray(Image.fromarray(photo).convert('L'), np.uint16) * 257)
  Image.fromarray(grey16).save(inp / 'scan.png')
  (inp / 'web.jpg').write_bytes(_jpeg(photo, quality=20))
  out = tmp_path / 'out'
  report = restore.run(model, str(inp), str(out))
  faces = json.loads((out / 'faces.json').read_text())
  assert {k: len(v) for k, v in faces.items()} == {'phone.jpg': 3, 'print.jpg': 3,
                                                   'scan.png': 3, 'web.jpg': 3}
  upright = Image.open(out / 'phone.jpg')
  assert upright.size == (photo.shape[1], photo.shape[0])  # written upright
  assert upright.getexif().get(0x0112, 1) == 1
  assert Image.open(out / 'print.jpg').mode == 'RGB'
  assert Image.open(out / 'scan.png').mode == 'L'
  warnings = '\n'.join(report['warnings'])
  assert 'phone.jpg: turned upright (EXIF orientation 6)' in warnings
  assert 'print.jpg: CMYK converted to RGB' in warnings
  assert 'scan.png: I;16 pixels scaled to 8 bits' in warnings
  assert 'web.jpg: JPEG quality about 20' in warnings
  assert 'quality about' not in warnings.replace('web.jpg: JPEG quality about 20', '')


def test_a_large_photo_is_detected_reduced_and_pasted_at_full_size(model, tmp_path):
  photo, truth = test_faces.compose((2600, 1500), ((140.0, 6.0, (800.0, 600.0)),))
  Image.fromarray(photo).save(tmp_path / 'big.png')
  report = restore.run(model, str(tmp_path / 'big.png'), str(tmp_path / 'out'))
  face, = report['photos']['big.png']
  assert test_faces.iou(face['box'], truth[0]['box']) >= test_faces.BOX_IOU
  restored = np.asarray(Image.open(tmp_path / 'out' / 'big.png'))
  assert restored.shape == photo.shape
  inside = _footprint(photo.shape, [face])
  np.testing.assert_array_equal(restored[~inside], photo[~inside])


def test_cli_one_line_errors_and_summary(model, three_faces, tmp_path):
  photo, _ = three_faces
  Image.fromarray(photo).save(tmp_path / 'p.png')
  run = lambda *a: subprocess.run([sys.executable, '-m', 'mrr_jax.restore', *a], cwd=REPO,
                                  capture_output=True, text=True, timeout=300)
  result = run('--model', model, '--input', str(tmp_path / 'nope'), '--output',
               str(tmp_path / 'o'))
  assert result.returncode == 1
  assert result.stderr.strip().splitlines()[-1] == f'error: --input {tmp_path / "nope"} does not exist'
  result = run('--model', model, '--input', str(tmp_path / 'p.png'), '--output',
               str(tmp_path / 'o'), '--max_faces=2')
  assert result.returncode == 0, result.stderr[-2000:]
  assert 'restored 2 face(s) in 1 photo(s); wrote 1 photo(s)' in result.stdout
  assert 'tensorflow' not in result.stderr.lower()
