# Runs inside a codedance sandbox session: `codedance exec examples/sandbox_demo.py`.
# The model's kind of code: make an image, find the bright square, crop it, report.
import numpy as np
from PIL import Image

canvas = np.zeros((256, 256, 3), np.uint8)
canvas[96:160, 120:184] = (255, 200, 0)
scene = Image.fromarray(canvas)
ys, xs = np.nonzero(canvas.sum(axis=2))
box = (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)
print("square found at", box)
scene.crop(box)
