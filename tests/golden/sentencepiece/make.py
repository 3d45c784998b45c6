"""Writes bv's SentencePiece cross-check fixtures with the SentencePiece library (pip
`sentencepiece`, the version in expected.json): two small unigram models trained here on a
mixed-script corpus, and the library's ids and decoded text for many random strings.

* `bytes.model`: byte_fallback=True, user-defined symbols `<sep>` and `hello world`,
  nmt_nfkc normalization (vocabulary 360 at most).
* `plain.model`: no byte fallback (unknown runs merge into one <unk>), identity
  normalization, remove_extra_whitespaces=False, add_dummy_prefix=False (vocabulary 250 at most).

Run: python make.py  (needs only `sentencepiece`; deterministic for a given version)
"""
import json
import os
import random

import sentencepiece as spm

HERE = os.path.dirname(os.path.abspath(__file__))

WORDS = ("the a photo of cat dog shirt trouser bag sneaker ankle boot pullover dress coat "
         "sandal café naïve résumé über straße 東京 日本語 テキスト 한국어 русский язык "
         "ελληνικά عربى हिन्दी 12345 3.14 hello world").split()
ALPHABET = list("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 .,;:!?'\"-_()[]{}"
                "\t\n\r\u00a0\u3000\u2028éàüßçñøÅ€£¥©®™½¼ﬁﬂＡＢＣ１２３ｶﾀｶﾅ①②"
                "東京日本語テキスト한국어русскийελληνικάعربىहिन्दी🙂👍🏽🇩🇪\u200b\u200d\ufeff")
SPECIALS = ["<sep>", "hello world", "</s>", "<unk>", "<pad>", "▁", "  ", "\x00", "\u0301", "e\u0301"]


def corpus(rng, n):
  for _ in range(n):
    yield " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 12)))


def random_text(rng):
  kind = rng.random()
  if kind < 0.4:
    return " ".join(rng.choice(WORDS + SPECIALS) for _ in range(rng.randint(0, 8)))
  if kind < 0.8:
    return "".join(rng.choice(ALPHABET) for _ in range(rng.randint(0, 30)))
  return "".join(chr(rng.randint(1, 0x2FFFF)) for _ in range(rng.randint(0, 10))
                 ).encode("utf-8", "replace").decode("utf-8", "replace")


def main():
  rng = random.Random(0)
  text = os.path.join(HERE, "corpus.txt")
  with open(text, "w", encoding="utf-8") as f:
    f.write("\n".join(corpus(rng, 3000)) + "\n")
  common = dict(input=text, model_type="unigram", character_coverage=1.0, pad_id=0,
                eos_id=1, unk_id=2, bos_id=-1, num_threads=1, seed_sentencepiece_size=5000,
                shuffle_input_sentence=False, minloglevel=2)
  spm.SentencePieceTrainer.train(model_prefix=os.path.join(HERE, "bytes"), vocab_size=360, hard_vocab_limit=False,
                                 byte_fallback=True, user_defined_symbols=["<sep>", "hello world"],
                                 normalization_rule_name="nmt_nfkc", **common)
  spm.SentencePieceTrainer.train(model_prefix=os.path.join(HERE, "plain"), vocab_size=250, hard_vocab_limit=False,
                                 normalization_rule_name="identity",
                                 remove_extra_whitespaces=False, add_dummy_prefix=False,
                                 **common)
  os.remove(text)
  for f in os.listdir(HERE):
    if f.endswith(".vocab"):
      os.remove(os.path.join(HERE, f))
  texts = [random_text(rng) for _ in range(2000)]
  out = {"sentencepiece_version": spm.__version__, "texts": texts}
  for name in ("bytes", "plain"):
    sp = spm.SentencePieceProcessor(model_file=os.path.join(HERE, f"{name}.model"))
    ids = [sp.encode(t) for t in texts]
    out[name] = {"ids": ids, "decoded": [sp.decode(i) for i in ids]}
  with open(os.path.join(HERE, "expected.json"), "w", encoding="utf-8") as f:
    json.dump(out, f, ensure_ascii=False)


if __name__ == "__main__":
  main()
