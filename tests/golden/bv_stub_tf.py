"""Lets big_vision's `utils.py` import without TensorFlow.

`big_vision/utils.py` does `import tensorflow.io.gfile as gfile` at import time, but the
fixture scripts never use gfile (no checkpoint I/O). `import_big_vision_utils` imports it
with an empty stand-in module that is removed again right after, so that nothing else
(flax.io, einops) mistakes the stand-in for TensorFlow. The pp set runs real TensorFlow.
"""

import importlib
import sys
import types

_NAMES = ("tensorflow", "tensorflow.io", "tensorflow.io.gfile")


def import_big_vision_utils():
  """Imports and returns `big_vision.utils` (big_vision must be on PYTHONPATH)."""
  if "tensorflow" in sys.modules:
    return importlib.import_module("big_vision.utils")
  tf = types.ModuleType("tensorflow")
  tf.io = types.ModuleType("tensorflow.io")
  tf.io.gfile = types.ModuleType("tensorflow.io.gfile")
  sys.modules.update(zip(_NAMES, (tf, tf.io, tf.io.gfile)))
  try:
    return importlib.import_module("big_vision.utils")
  finally:
    for name in _NAMES:
      del sys.modules[name]
