"""Image outputs: quantisation to uint8 and PNG grids of samples."""
import math

import numpy as np
from PIL import Image

from training import io


def quantize(x):
  """[-1, 1] floats -> uint8, once: clip(round(127.5 x + 127.5), 0, 255) (DESIGN.md)."""
  return np.clip(np.round(127.5 * np.asarray(x, np.float64) + 127.5), 0, 255).astype(np.uint8)


def grid(images, columns=None, pad=1):
  """uint8 NHWC -> one HxWxC uint8 mosaic, row-major, `pad` black pixels between tiles."""
  n, h, w, c = images.shape
  columns = columns or math.ceil(math.sqrt(n))
  rows = math.ceil(n / columns)
  out = np.zeros((rows * (h + pad) + pad, columns * (w + pad) + pad, c), np.uint8)
  for i, img in enumerate(images):
    r, k = divmod(i, columns)
    out[pad + r * (h + pad):pad + r * (h + pad) + h, pad + k * (w + pad):pad + k * (w + pad) + w] = img
  return out


def save_grid(images, path, columns=None, scale=None):
  """Write a PNG grid of uint8 NHWC images (grey when C = 1), upscaled for small images."""
  g = grid(images, columns)
  scale = scale or max(1, 256 // max(images.shape[1], 1) // 4)
  img = Image.fromarray(g[..., 0] if g.shape[-1] == 1 else g)
  if scale > 1:
    img = img.resize((img.width * scale, img.height * scale), Image.NEAREST)
  with io.atomic_file(path) as f:
    img.save(f, format='png')
