"""Writes big_vision's class-name lists (datasets/imagenet/class_names.py at commit 0127fb6b)
and prompt templates (evaluators/proj/image_text/prompt_engineering_constants.py) as text
files, one entry per line, for bv's `clip_i1k_label_names` / `i21k_label_names` pp ops and
the zero-shot evaluator.

Run: PYTHONPATH=/path/to/big_vision_src python make.py
"""
import os

from big_vision.datasets.imagenet import class_names as cn
from big_vision.evaluators.proj.image_text import prompt_engineering_constants as pe

HERE = os.path.dirname(os.path.abspath(__file__))


def write(name, lines):
  assert all("\n" not in l for l in lines), name
  with open(os.path.join(HERE, name), "w", encoding="utf-8") as f:
    f.write("\n".join(lines) + "\n")


write("clip_imagenet.txt", cn.CLIP_IMAGENET_CLASS_NAMES)
write("imagenet21k.txt", cn.IMAGENET21k_CLASS_NAMES)
write("imagenet_a_labelset.txt", [str(i) for i in cn.IMAGENET_A_LABELSET])
write("imagenet_r_labelset.txt", [str(i) for i in cn.IMAGENET_R_LABELSET])
write("clip_paper_templates.txt", pe.CLIP_PAPER_PROMPT_TEMPLATES)
write("clip_best_templates.txt", pe.CLIP_BEST_PROMPT_TEMPLATES)
