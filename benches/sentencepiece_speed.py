"""The SentencePiece library's encoding speed (pip `sentencepiece`, the C++ library behind a
Python binding) on the same models and texts as bv's `sentencepiece_speed` example: each
model's texts encoded 20 times, one call per text as tokenize does per example; best of 5.

Run: python benches/sentencepiece_speed.py   (prints one JSON line per model)
"""
import json
import os
import time

import sentencepiece as spm

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "../tests/golden")

for model, texts in [("sentencepiece/bytes.model", "sentencepiece/expected.json"),
                     ("siglip/tokenizer/spm.model", "siglip/tokenizer/expected.json")]:
  sp = spm.SentencePieceProcessor(model_file=os.path.join(ROOT, model))
  with open(os.path.join(ROOT, texts), encoding="utf-8") as f:
    texts = json.load(f)["texts"]
  best = float("inf")
  for _ in range(5):
    t = time.perf_counter()
    for _ in range(20):
      for text in texts:
        sp.encode(text)
    best = min(best, time.perf_counter() - t)
  n = len(texts) * 20
  print(json.dumps({"impl": f"sentencepiece {spm.__version__} (Python)", "model": model,
                    "texts": n, "best_s": round(best, 4), "texts_per_s": round(n / best)}))
