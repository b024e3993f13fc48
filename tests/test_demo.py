"""mrr_jax.demo: its HTTP answers, and the page driven in headless Chromium (skipped without one)."""
import base64
import io
import json
import os
import shutil
import subprocess
import sys
import urllib.error
import urllib.request

import numpy as np
from PIL import Image
import pytest

from tests import test_faces, test_restore

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
model = test_restore.model  # the same small random export (a module-scoped fixture)


@pytest.fixture(scope='module')
def group_photo(tmp_path_factory):
  root = tmp_path_factory.mktemp('demo_photos')
  photo, truth = test_faces.compose((720, 420), test_restore.THREE)
  Image.fromarray(photo).save(root / 'group.png')
  return root, photo, truth


@pytest.fixture(scope='module')
def demo_server(model, group_photo):
  root, _, _ = group_photo
  proc = subprocess.Popen([sys.executable, '-m', 'mrr_jax.demo', '--model', model, '--port', '0',
                           '--examples', str(root)], cwd=REPO, stdout=subprocess.PIPE,
                          stderr=subprocess.DEVNULL, text=True)
  line = proc.stdout.readline()
  assert line.startswith('serving on http://127.0.0.1:'), line
  yield line.split()[-1]
  proc.terminate()
  proc.wait(timeout=30)


def _decode(data_url):
  return np.asarray(Image.open(io.BytesIO(base64.b64decode(data_url.split(',', 1)[1]))))


def _post(url, data, name):
  request = urllib.request.Request(url + 'restore?name=' + name, data=data, method='POST')
  try:
    with urllib.request.urlopen(request, timeout=300) as r:
      return r.status, json.loads(r.read())
  except urllib.error.HTTPError as e:
    return e.code, json.loads(e.read())


def _faces_changed_background_not(restored, photo, faces):
  assert restored.shape == photo.shape
  inside = test_restore._footprint(photo.shape, faces)  # pylint: disable=protected-access
  np.testing.assert_array_equal(restored[~inside], photo[~inside])
  for f in faces:
    x0, y0, x1, y1 = (int(v) for v in f['box'])
    assert np.abs(restored[y0:y1, x0:x1].astype(int) - photo[y0:y1, x0:x1]).mean() > 2


def test_restore_endpoint_answers_with_the_restored_photo(demo_server, group_photo):
  root, photo, _ = group_photo
  status, out = _post(demo_server, (root / 'group.png').read_bytes(), 'group.png')
  assert status == 200, out
  assert len(out['faces']) == 3 and out['name'] == 'group_restored.png'
  _faces_changed_background_not(_decode(out['restored']), photo, out['faces'])
  np.testing.assert_array_equal(_decode(out['input']), photo)
  assert len(out['strips']) == 3 and len(out['attention']) == 1
  attention = _decode(out['attention'][0])
  assert attention.shape[0] >= 3 * 128  # one row per face


def test_bad_uploads_get_a_message(demo_server):
  status, out = _post(demo_server, b'not an image at all', 'notes.txt')
  assert status == 400 and out['error'].startswith('cannot read notes.txt: not a recognised image')
  status, out = _post(demo_server, b'', 'empty.png')
  assert status == 400 and 'empty' in out['error']
  with urllib.request.urlopen(demo_server, timeout=60) as r:
    page = r.read().decode()
  assert '<input type="file"' in page and 'data-name="group.png"' in page


CHROMIUM = shutil.which('chromium') or shutil.which('chromium-browser')
CHROMEDRIVER = shutil.which('chromedriver')


@pytest.mark.skipif(not (CHROMIUM and CHROMEDRIVER),
                    reason='headless Chromium and chromedriver are not installed (Debian: '
                           'apt-get install chromium chromium-driver; .ci/run does)')
def test_upload_in_headless_chromium(demo_server, group_photo, tmp_path):
  webdriver = pytest.importorskip('selenium.webdriver')
  from selenium.webdriver.common.by import By  # pylint: disable=g-import-not-at-top
  from selenium.webdriver.support.ui import WebDriverWait  # pylint: disable=g-import-not-at-top
  root, photo, _ = group_photo
  options = webdriver.ChromeOptions()
  options.binary_location = CHROMIUM
  for arg in ('--headless=new', '--no-sandbox', '--disable-gpu', '--window-size=1200,1600',
              '--disable-dev-shm-usage'):
    options.add_argument(arg)
  driver = webdriver.Chrome(options=options,
                            service=webdriver.ChromeService(executable_path=CHROMEDRIVER))
  try:
    driver.get(demo_server)
    driver.find_element(By.ID, 'file').send_keys(str(root / 'group.png'))
    driver.find_element(By.ID, 'go').click()
    WebDriverWait(driver, 300).until(
        lambda d: d.find_element(By.TAG_NAME, 'body').get_attribute('data-done') == '1')
    status = driver.find_element(By.ID, 'status').text
    assert status.startswith('3 face(s) found'), status
    restored = _decode(driver.find_element(By.ID, 'restored').get_attribute('src'))
    faces = json.loads(driver.execute_script(
        "return JSON.stringify(document.querySelectorAll('#faces img').length)"))
    assert faces == 3
    driver.save_screenshot(str(tmp_path / 'demo.png'))
    if os.environ.get('MRR_JAX_SCREENSHOT'):  # to look at it
      shutil.copy(tmp_path / 'demo.png', os.environ['MRR_JAX_SCREENSHOT'])
  finally:
    driver.quit()
  # The page shows what the server computed: faces changed, background not.
  status, out = _post(demo_server, (root / 'group.png').read_bytes(), 'group.png')
  _faces_changed_background_not(restored, photo, out['faces'])
  screenshot = np.asarray(Image.open(tmp_path / 'demo.png'))
  assert screenshot.shape[0] >= 1000 and screenshot.std() > 10  # a page, not a blank
