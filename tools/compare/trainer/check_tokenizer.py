"""transformers' AutoTokenizer on a checkpoint written by `pnpm train`: it must load the
tokenizer files the trainer writes (tokenizer.json, tokenizer_config.json,
special_tokens_map.json) and give, text for text, the ids this project's tokenizer gives with
BOS, and decode them to what its decode gives (tokenizer-expect.mjs writes both).

    python3 check_tokenizer.py <checkpoint dir> <tokenizer-expect.json>

Beside the files as written it also tries them with other tokenizer_config.json settings
(transformers' LlamaTokenizer with legacy true and false), reported for information: recent
transformers releases rebuild the Llama pipeline from the config, which is why the trainer
writes PreTrainedTokenizerFast (tokenizer.json used as written). Exit 1 when the files as
written disagree anywhere.
"""

import json
import os
import shutil
import sys
import tempfile

import transformers
from transformers import AutoTokenizer


def check(tok, cases, bos_id, eos_id):
    bad = []
    for c in cases:
        ids = tok(c["text"])["input_ids"]
        if ids != c["ids"]:
            bad.append(("encode", c["text"], c["ids"][:12], ids[:12]))
            continue
        back = tok.decode(ids, skip_special_tokens=True)
        if back != c["decoded"]:
            bad.append(("decode", c["text"], c["decoded"], back))
    if tok.bos_token_id != bos_id or tok.eos_token_id != eos_id:
        bad.append(("special", "", [bos_id, eos_id], [tok.bos_token_id, tok.eos_token_id]))
    return bad


def with_config(src, tmp, name, changes):
    d = os.path.join(tmp, name)
    os.makedirs(d)
    for f in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        shutil.copy(os.path.join(src, f), d)
    path = os.path.join(d, "tokenizer_config.json")
    with open(path, encoding="utf8") as f:
        config = json.load(f)
    config.update(changes)
    with open(path, "w", encoding="utf8") as f:
        json.dump(config, f)
    return d


def main():
    ckpt, expect_path = sys.argv[1], sys.argv[2]
    with open(expect_path, encoding="utf8") as f:
        expect = json.load(f)
    cases = expect["cases"]
    print(f"transformers {transformers.__version__}, {len(cases)} texts, checkpoint {ckpt}")
    rc = 0
    with tempfile.TemporaryDirectory() as tmp:
        variants = [("as written", ckpt)] + [
            (
                f"LlamaTokenizer legacy={legacy}",
                with_config(
                    ckpt, tmp, f"legacy-{legacy}", {"tokenizer_class": "LlamaTokenizer", "legacy": legacy}
                ),
            )
            for legacy in (True, False)
        ]
        for name, d in variants:
            try:
                tok = AutoTokenizer.from_pretrained(d)
            except Exception as e:  # noqa: BLE001 - report any failure to load, then go on
                print(f"{name}: FAILED to load: {type(e).__name__}: {e}")
                rc = 1 if name == "as written" else rc
                continue
            bad = check(tok, cases, expect["bosId"], expect["eosId"])
            print(f"{name} ({type(tok).__name__}): {len(cases) - len(bad)}/{len(cases)} texts agree")
            for b in bad[:4]:
                print("  ", b)
            if bad and name == "as written":
                rc = 1
    print("tokenizer check", "PASS" if rc == 0 else "FAIL")
    sys.exit(rc)


if __name__ == "__main__":
    main()
