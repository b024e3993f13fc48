r"""A local web page to try a model on your own photos: upload, see the faces, download.

  python -m mrr_jax.demo --model EXPORT [--port 8080] [--examples DIR]

Then open http://localhost:8080. The page posts the photo to the server,
which runs mrr_jax.restore on it and returns the restored photo, one strip per
face (LR | bicubic | SR) and the attention maps of the paper's Fig. 4
(bicubic, SR, then each block's map from encoder to decoder). Served by the
standard library's http.server, from this machine only (127.0.0.1 unless
--host): no network access and no web framework to install; one request at a
time, which is what one model on one machine can serve anyway.
"""
import base64
import html
import io
import json
import os
import sys
import threading
from http import server
from typing import Dict, Optional, Sequence

from absl import app, flags, logging
import numpy as np
from PIL import Image

from mrr_jax import cli, restore, visualize
from mrr_jax.data.bad_files import BadImageError
from mrr_jax.faces import photos

MAX_UPLOAD_BYTES = 40 * 2**20

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>mrr_jax: face super-resolution</title>
<style>
 body {{ font-family: sans-serif; margin: 1.5em; max-width: 1100px; }}
 img {{ max-width: 100%; image-rendering: auto; border: 1px solid #ccc; }}
 .row {{ display: flex; gap: 1em; flex-wrap: wrap; }} .row > div {{ flex: 1; min-width: 300px; }}
 #status {{ color: #555; }} .error {{ color: #b00; }}
</style></head><body>
<h1>Face super-resolution (MRRNet)</h1>
<p>Model: <code>{model}</code>. Faces are found, cropped as in training, shrunk to 16x16,
super-resolved to 128x128 and pasted back; the rest of the photo is untouched.</p>
<form id="form"><input type="file" id="file" accept="image/*">
<button type="submit" id="go">Restore</button> {examples}</form>
<p id="status"></p>
<div class="row"><div><h3>Input</h3><img id="input" alt=""></div>
<div><h3>Restored</h3><img id="restored" alt=""><br><a id="download" download>download</a></div></div>
<h3>Faces (LR | bicubic | SR)</h3><div id="faces"></div>
<h3>Attention maps (bicubic, SR, then encoder to decoder)</h3><div id="attention"></div>
<script>
const show = (id, src) => {{ const e = document.getElementById(id); e.src = src; }};
async function send(body, name) {{
  document.getElementById('status').textContent = 'restoring ' + name + ' ...';
  const r = await fetch('/restore?name=' + encodeURIComponent(name), {{method: 'POST', body}});
  const out = await r.json();
  const status = document.getElementById('status');
  if (!r.ok) {{ status.textContent = out.error; status.className = 'error'; return; }}
  status.className = '';
  status.textContent = out.faces.length + ' face(s) found' + (out.warnings.length ?
      '; ' + out.warnings.join('; ') : '');
  show('input', out.input); show('restored', out.restored);
  const a = document.getElementById('download'); a.href = out.restored; a.download = out.name;
  for (const [id, list] of [['faces', out.strips], ['attention', out.attention]]) {{
    const box = document.getElementById(id); box.innerHTML = '';
    for (const src of list) {{ const img = document.createElement('img'); img.src = src;
      box.appendChild(img); }}
  }}
  document.body.dataset.done = String(Number(document.body.dataset.done || 0) + 1);
}}
document.getElementById('form').addEventListener('submit', e => {{
  e.preventDefault(); const f = document.getElementById('file').files[0];
  if (f) send(f, f.name);
}});
for (const b of document.querySelectorAll('.example')) b.addEventListener('click', async e => {{
  e.preventDefault(); const r = await fetch('/example/' + b.dataset.name);
  send(await r.blob(), b.dataset.name);
}});
</script></body></html>
"""


def _data_url(rgb: np.ndarray, fmt: str = 'PNG') -> str:
  buf = io.BytesIO()
  Image.fromarray(rgb).save(buf, format=fmt)
  mime = 'image/png' if fmt == 'PNG' else 'image/jpeg'
  return f'data:{mime};base64,' + base64.b64encode(buf.getvalue()).decode()


class Demo:
  """The model and the examples; `restore_bytes` is what one request does."""

  def __init__(self, model: str, examples_dir: Optional[str] = None):
    self.model = model
    self.restorer = restore.Restorer(model)
    self.examples = {}
    if examples_dir:
      for name in sorted(os.listdir(examples_dir)):
        if name.lower().endswith(('.png', '.jpg', '.jpeg')):
          self.examples[name] = os.path.join(examples_dir, name)
    self._lock = threading.Lock()

  def page(self) -> str:
    buttons = ' '.join(f'<button class="example" data-name="{html.escape(n)}">{html.escape(n)}'
                       '</button>' for n in self.examples)
    return PAGE.format(model=html.escape(self.model),
                       examples=('or try an example: ' + buttons) if buttons else '')

  def restore_bytes(self, data: bytes, name: str) -> Dict:
    """The JSON answer for one uploaded photo; BadImageError for what is not a photo."""
    if not data:
      raise BadImageError(f'{name}: empty upload')
    photo = photos.read_photo_bytes(data, name)
    with self._lock:  # one model, one request at a time
      restored, records, strips, lrs = restore.restore_photo(self.restorer, photo.rgb)
      attention = self._attention(lrs)
    warnings = list(photo.notes)
    if not records:
      warnings.append('no face found')
    fmt = 'JPEG' if photo.format == 'JPEG' else 'PNG'
    out_name = os.path.splitext(os.path.basename(name))[0] + '_restored' + (
        '.jpg' if fmt == 'JPEG' else '.png')
    return {'name': out_name, 'faces': records, 'warnings': warnings,
            'input': _data_url(photo.rgb), 'restored': _data_url(restored, fmt),
            'strips': [_data_url(s) for s in strips], 'attention': attention}

  def _attention(self, lrs):
    if not len(lrs) or not self.restorer.has_attention:
      return []
    bicubic, sr, maps = self.restorer.attention(lrs)
    return [_data_url(visualize.tile_grid(visualize.attention_rows(bicubic, sr, maps)))]


def make_handler(demo: Demo):
  class Handler(server.BaseHTTPRequestHandler):
    """GET / (the page), GET /example/NAME, POST /restore?name=NAME (the photo's bytes)."""

    def log_message(self, fmt, *args):  # absl's log, not stderr lines per request
      logging.info('demo: ' + fmt, *args)

    def _send(self, code: int, body: bytes, mime: str):
      self.send_response(code)
      self.send_header('Content-Type', mime)
      self.send_header('Content-Length', str(len(body)))
      self.end_headers()
      self.wfile.write(body)

    def _json(self, code: int, obj):
      self._send(code, json.dumps(obj).encode(), 'application/json')

    def do_GET(self):  # pylint: disable=invalid-name
      if self.path in ('/', '/index.html'):
        return self._send(200, demo.page().encode(), 'text/html; charset=utf-8')
      if self.path.startswith('/example/'):
        name = self.path[len('/example/'):]
        if name in demo.examples:
          with open(demo.examples[name], 'rb') as f:
            return self._send(200, f.read(), 'application/octet-stream')
      return self._json(404, {'error': f'no such page: {self.path}'})

    def do_POST(self):  # pylint: disable=invalid-name
      if not self.path.startswith('/restore'):
        return self._json(404, {'error': f'no such endpoint: {self.path}'})
      from urllib.parse import parse_qs, urlparse  # pylint: disable=g-import-not-at-top
      name = (parse_qs(urlparse(self.path).query).get('name') or ['upload'])[0]
      length = int(self.headers.get('Content-Length') or 0)
      if length > MAX_UPLOAD_BYTES:
        return self._json(413, {'error': f'{name} is {length / 2**20:.0f} MiB; the limit is '
                                         f'{MAX_UPLOAD_BYTES // 2**20} MiB'})
      data = self.rfile.read(length)
      try:
        return self._json(200, demo.restore_bytes(data, name))
      except BadImageError as e:
        return self._json(400, {'error': str(e)})

  return Handler


_MODEL = flags.DEFINE_string('model', None, 'Generator export directory.')
_PORT = flags.DEFINE_integer('port', 8080, 'Port to serve on (0: any free port, printed).')
_HOST = flags.DEFINE_string('host', '127.0.0.1', 'Address to listen on (127.0.0.1: this '
                            'machine only).')
_EXAMPLES = flags.DEFINE_string('examples', None, 'Folder of example photos to offer.')


def main(argv: Sequence[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  if not _MODEL.value:
    raise app.UsageError('--model is required')
  if _EXAMPLES.value and not os.path.isdir(_EXAMPLES.value):
    sys.exit(f'error: --examples {_EXAMPLES.value} is not a folder')
  cli.enable_compilation_cache()
  try:
    demo = Demo(_MODEL.value, _EXAMPLES.value)
  except restore.RestoreError as e:
    sys.exit(f'error: {e}')
  try:
    httpd = server.HTTPServer((_HOST.value, _PORT.value), make_handler(demo))
  except OSError as e:
    sys.exit(f'error: cannot listen on {_HOST.value}:{_PORT.value}: {e.strerror or e}')
  print(f'serving on http://{_HOST.value}:{httpd.server_address[1]}/', flush=True)
  try:
    httpd.serve_forever()
  except KeyboardInterrupt:
    pass
  finally:
    httpd.server_close()


if __name__ == '__main__':
  cli.run(main)
