"""Writes ImageNet-like JPEGs from the photos inside scikit-image's wheel.

Random crops of each colour photo, resized to typical ImageNet sizes (short side 333-500,
4:3 / 3:2 / 3:4 / 1:1), Pillow baseline JPEG quality 90 with 4:2:0 chroma subsampling.
Usage: python make_jpegs.py OUT_DIR [COUNT]
"""
import random
import sys
from pathlib import Path

import numpy as np
from PIL import Image
from skimage import data

NAMES = ["astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field",
         "immunohistochemistry", "retina"]
SIZES = [(500, 375), (375, 500), (500, 333), (333, 500), (500, 500), (400, 300), (640, 480)]


def main():
    out = Path(sys.argv[1])
    count = int(sys.argv[2]) if len(sys.argv) > 2 else 512
    out.mkdir(parents=True, exist_ok=True)
    photos = []
    for n in NAMES:
        try:
            img = getattr(data, n)()
        except Exception as e:  # some photos need a download; skip them
            print("skip", n, e)
            continue
        if img.ndim == 3 and img.shape[2] == 3:
            photos.append(Image.fromarray(np.asarray(img, np.uint8)))
    rng = random.Random(0)
    total = 0
    for i in range(count):
        src = photos[i % len(photos)]
        w, h = rng.choice(SIZES)
        sw, sh = src.size
        scale = rng.uniform(0.6, 1.0)
        cw = int(min(sw, sh * w / h) * scale)
        ch = int(cw * h / w)
        x, y = rng.randint(0, sw - cw), rng.randint(0, sh - ch)
        img = src.crop((x, y, x + cw, y + ch)).resize((w, h), Image.BICUBIC)
        path = out / f"img{i:05d}.jpg"
        img.save(path, "JPEG", quality=90, subsampling=2)
        total += path.stat().st_size
    print(f"{count} JPEGs from {len(photos)} photos, mean {total / count / 1024:.1f} KiB")


if __name__ == "__main__":
    main()
