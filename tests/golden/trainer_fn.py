"""big_vision's trainer closures (`update_fn`, `loss_fn`), taken from the trainer's own
source and run as written: the fixture writer shared by `distill/`, `flexi/` and `gsam/`.

big_vision's project trainers define their update step inside `main()`, closing over the
config, the models and the optimizer. `closures(module, names, env)` parses the trainer
module's source, takes the function definitions `names` that `main()` holds (decorators
included: `jax.jit`, `jax.pmap`) and executes them with `env` as their globals, so the
step that runs is big_vision's text, not a rewrite. The only stand-in is `jax` itself:
`jax.tree_map` / `jax.tree_leaves` / `jax.tree_structure` were removed from JAX after
these trainers were written, so `env["jax"]` is JAX with those three names restored as
`jax.tree.map` / `jax.tree.leaves` / `jax.tree.structure`.

Run with JAX 0.10.2 / Flax 0.12.8 / Optax 0.2.8, TensorFlow 2.21 (big_vision's distance
evaluator and FlexiViT import it) and big_vision (commit 0127fb6b) on PYTHONPATH.
"""

import ast
import importlib.util
import json
import types

import jax
import numpy as np


class _JaxCompat(types.ModuleType):
  """`jax` with the tree functions big_vision's older trainers call."""

  tree_map = staticmethod(jax.tree.map)
  tree_leaves = staticmethod(jax.tree.leaves)
  tree_structure = staticmethod(jax.tree.structure)

  def __getattr__(self, name):
    return getattr(jax, name)


JAX = _JaxCompat("jax")


def _source(module_name):
  """The parsed source of a module and its file, without importing it (the trainers
  import `clu` and flags that fixtures do not need)."""
  path = importlib.util.find_spec(module_name).origin
  with open(path) as f:
    return ast.parse(f.read()), path


def closures(module_name, names, env):
  """The functions `names` defined in `main()` of `module_name`, executed with globals
  `env` (which must hold every free name they use); returns `{name: function}`."""
  tree, path = _source(module_name)
  main = next(n for n in tree.body
              if isinstance(n, ast.FunctionDef) and n.name == "main")
  env = {**env, "jax": JAX}
  for node in main.body:
    if isinstance(node, ast.FunctionDef) and node.name in names:
      code = compile(ast.Module(body=[node], type_ignores=[]), path, "exec")
      exec(code, env)  # pylint: disable=exec-used
  missing = [n for n in names if n not in env]
  assert not missing, f"{module_name}.main defines no {missing}"
  return {n: env[n] for n in names}


def module_function(module_name, name, env):
  """A module-level function of `module_name` (e.g. `getfirst`), executed like
  [`closures`]."""
  tree, path = _source(module_name)
  node = next(n for n in tree.body
              if isinstance(n, ast.FunctionDef) and n.name == name)
  env = {**env, "jax": JAX}
  exec(compile(ast.Module(body=[node], type_ignores=[]), path, "exec"), env)  # pylint: disable=exec-used
  return env[name]


def flat(tree, prefix=""):
  """A nested dict of arrays as `{"a/b/c": np.ndarray}` (big_vision's checkpoint names)."""
  out = {}
  for k, v in tree.items():
    name = f"{prefix}{k}"
    if isinstance(v, dict) or hasattr(v, "items"):
      out.update(flat(v, name + "/"))
    else:
      out[name] = np.asarray(v)
  return out


def unreplicate(tree):
  """Device 0's copy of a `pmap` output."""
  return jax.tree.map(lambda x: np.asarray(x)[0], tree)


def key_data(key):
  """A raw `PRNGKey` (uint32[2]) as a JSON list."""
  return [int(x) for x in np.asarray(key)]


def write_json(path, obj):
  with open(path, "w") as f:
    json.dump(obj, f, indent=1, sort_keys=True)
    f.write("\n")


def versions():
  import flax  # pylint: disable=g-import-not-at-top
  import optax  # pylint: disable=g-import-not-at-top
  return {"jax": jax.__version__, "flax": flax.__version__,
          "optax": optax.__version__, "numpy": np.__version__}
