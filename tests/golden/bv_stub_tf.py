"""Lets big_vision's `utils.py` import without TensorFlow.

`big_vision/utils.py` does `import tensorflow.io.gfile as gfile` at import time but the
fixture scripts never use gfile (no checkpoint I/O), so an empty module stands in for it in
the JAX-only venv. The pp set runs the real TensorFlow instead.
"""

import sys
import types


def stub_tensorflow():
  if "tensorflow" in sys.modules:
    return
  # flax.io picks its file backend by looking for TensorFlow: import it before the stub.
  import flax.io  # pylint: disable=import-outside-toplevel,unused-import
  tf = types.ModuleType("tensorflow")
  tf.io = types.ModuleType("tensorflow.io")
  tf.io.gfile = types.ModuleType("tensorflow.io.gfile")
  sys.modules.update({"tensorflow": tf, "tensorflow.io": tf.io,
                      "tensorflow.io.gfile": tf.io.gfile})
