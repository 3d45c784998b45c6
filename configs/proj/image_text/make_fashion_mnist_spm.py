"""Writes fashion_mnist_spm.model, the SentencePiece tokenizer of the Fashion-MNIST image-text
jobs (siglip_fashion_mnist.ron, lit_fashion_mnist.ron): a unigram model (pad 0, EOS 1, unk 2,
no BOS, as big_vision's c4_en) trained on every caption the jobs can make, the class names
put into big_vision's CLIP prompt templates (clip_paper, which holds clip_best), canonicalized
as big_vision's zero-shot evaluator does. Identity normalization keeps the file small.

Run: PYTHONPATH=/path/to/big_vision_src python make_fashion_mnist_spm.py  (needs sentencepiece)
"""
import os
import sys
import types

for _m in ("tensorflow", "tensorflow_datasets"):  # imported by prompt_engineering, unused here
  sys.modules.setdefault(_m, types.ModuleType(_m))

import sentencepiece as spm  # noqa: E402
from big_vision.evaluators.proj.image_text import prompt_engineering as pe  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
NAMES = ["t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker",
         "bag", "ankle boot"]


def main():
  names = [pe.canonicalize_text(n, keep_punctuation_exact_string=",") for n in NAMES]
  templates = pe.get_prompt_templates("clip_paper")
  lines = [t.replace("{}", n) for t in templates for n in names]
  corpus = os.path.join(HERE, "captions.txt")
  with open(corpus, "w") as f:
    f.write("\n".join(lines) + "\n")
  spm.SentencePieceTrainer.train(
      input=corpus, model_prefix=os.path.join(HERE, "fashion_mnist_spm"), vocab_size=256,
      hard_vocab_limit=False, model_type="unigram", character_coverage=1.0, pad_id=0,
      eos_id=1, unk_id=2, bos_id=-1, normalization_rule_name="identity", num_threads=1,
      shuffle_input_sentence=False, minloglevel=2)
  os.remove(corpus)
  os.remove(os.path.join(HERE, "fashion_mnist_spm.vocab"))


if __name__ == "__main__":
  main()
