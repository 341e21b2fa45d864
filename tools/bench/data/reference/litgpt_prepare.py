"""The reference the data bench compares against: the preparation TinyLlama's own repository did
(its scripts/prepare_slimpajama.py and prepare_starcoder.py, on lit-gpt's PackedDatasetBuilder),
written out here from their published logic so it runs beside our pipeline in the same session.

Per document, as they do: read the jsonl.zst line (or the parquet row's `content`), json-decode
it, drop SlimPajama's RedPajamaGithub records, tokenize with the Llama 2 tokenizer plus EOS (no
BOS), append the ids to a uint16 buffer and write a LITPKDS file whenever 1024 blocks of 2049
tokens are full. No deduplication, no statistics, no resume: the minimum a pipeline must do.

  python3 litgpt_prepare.py --corpus DIR --tokenizer-json tokenizer.json --sp-model tokenizer.model
      --backend hf|sp --mode pipeline|tokenize [--texts texts.json] [--out DIR]

--backend hf: Hugging Face `tokenizers` (lit-gpt's backend when a checkpoint has tokenizer.json),
one document per `encode` call, one thread; sp: SentencePiece (its backend with tokenizer.model).
--mode tokenize: only tokenize the documents of --texts, already in memory (tokenizing alone).
Prints one JSON line: CPU-seconds of the timed part (tokenizer load excluded), documents, tokens.
"""

import argparse
import glob
import io
import json
import os
import struct
import subprocess
import time

os.environ.setdefault("RAYON_NUM_THREADS", "1")  # one core, like one worker of ours
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np  # noqa: E402

EOS = 2
BLOCK = 2049
CHUNK = BLOCK * 1024


def load_encoder(backend, tokenizer_json, sp_model):
    if backend == "hf":
        from tokenizers import Tokenizer

        tok = Tokenizer.from_file(tokenizer_json)
        encode = lambda text: tok.encode(text, add_special_tokens=False).ids  # noqa: E731
    else:
        import sentencepiece as spm

        sp = spm.SentencePieceProcessor(model_file=sp_model)
        encode = sp.encode
    # Known ids of the Llama 2 tokenizer: refuse a wrong vocabulary rather than time it.
    got = encode("Hello world!")
    if got != [15043, 3186, 29991]:
        raise SystemExit(f"{backend} tokenizer encodes 'Hello world!' as {got}")
    return encode


class PackedWriter:
    """lit-gpt's PackedDatasetBuilder behaviour for uint16: fill a chunk, write it whole."""

    def __init__(self, out_dir, prefix):
        self.out_dir, self.prefix = out_dir, prefix
        self.buf = np.empty(CHUNK, dtype=np.uint16)
        self.fill = 0
        self.files = 0

    def add(self, ids):
        arr = np.asarray(ids, dtype=np.uint16)
        while arr.size:
            n = min(arr.size, CHUNK - self.fill)
            self.buf[self.fill : self.fill + n] = arr[:n]
            self.fill += n
            arr = arr[n:]
            if self.fill == CHUNK:
                self.flush()

    def flush(self):
        if self.out_dir is None:
            self.fill = 0
            return
        path = os.path.join(self.out_dir, f"{self.prefix}_{self.files:010d}.bin")
        with open(path, "wb") as f:
            f.write(b"LITPKDS" + struct.pack("<Q", 1) + struct.pack("<B", 8))
            f.write(struct.pack("<Q", CHUNK))
            f.write(self.buf.tobytes(order="C"))
        self.files += 1
        self.fill = 0


def zstd_lines(path):
    """Text lines of a .jsonl.zst file, decompressed as a stream."""
    try:
        import zstandard

        with open(path, "rb") as raw:
            yield from io.TextIOWrapper(zstandard.ZstdDecompressor().stream_reader(raw), encoding="utf-8")
        return
    except ImportError:
        pass
    try:
        import pyarrow as pa

        # pyarrow's zstd stream, whole file at once (simplest with its file API; bench files are
        # a few MB, and this only spares the reference work)
        with pa.CompressedInputStream(pa.OSFile(path), "zstd") as stream:
            data = stream.read()
        yield from io.TextIOWrapper(io.BytesIO(data), encoding="utf-8")
        return
    except ImportError:
        pass
    proc = subprocess.Popen(["zstd", "-dc", path], stdout=subprocess.PIPE)
    yield from io.TextIOWrapper(proc.stdout, encoding="utf-8")
    proc.wait()


def parquet_texts(path):
    import pyarrow.parquet as pq

    pf = pq.ParquetFile(path)
    for g in range(pf.num_row_groups):
        yield from pf.read_row_group(g, columns=["content"]).column("content").to_pylist()


def pipeline(corpus, encode, out_dir):
    docs = tokens = 0
    sp_writer = PackedWriter(out_dir, "train_slimpajama")
    for path in sorted(glob.glob(os.path.join(corpus, "slimpajama", "**", "*.jsonl.zst"), recursive=True)):
        for line in zstd_lines(path):
            record = json.loads(line)
            if record.get("meta", {}).get("redpajama_set_name") == "RedPajamaGithub":
                continue
            ids = encode(record["text"])
            ids.append(EOS)
            sp_writer.add(ids)
            docs += 1
            tokens += len(ids)
    code_writer = PackedWriter(out_dir, "train_starcoder")
    for path in sorted(glob.glob(os.path.join(corpus, "starcoderdata", "**", "*.parquet"), recursive=True)):
        for text in parquet_texts(path):
            ids = encode(text)
            ids.append(EOS)
            code_writer.add(ids)
            docs += 1
            tokens += len(ids)
    return docs, tokens


def tokenize_only(texts, encode):
    tokens = 0
    for text in texts:
        tokens += len(encode(text)) + 1
    return len(texts), tokens


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--corpus")
    ap.add_argument("--texts")
    ap.add_argument("--tokenizer-json")
    ap.add_argument("--sp-model")
    ap.add_argument("--backend", choices=["hf", "sp"], required=True)
    ap.add_argument("--mode", choices=["pipeline", "tokenize"], required=True)
    ap.add_argument("--out")
    a = ap.parse_args()
    encode = load_encoder(a.backend, a.tokenizer_json, a.sp_model)
    texts = None
    if a.mode == "tokenize":
        with open(a.texts, encoding="utf-8") as f:
            texts = json.load(f)
    if a.out:
        os.makedirs(a.out, exist_ok=True)
    c0, w0 = time.process_time(), time.perf_counter()
    if a.mode == "pipeline":
        docs, tokens = pipeline(a.corpus, encode, a.out)
    else:
        docs, tokens = tokenize_only(texts, encode)
    cpu, wall = time.process_time() - c0, time.perf_counter() - w0
    print(json.dumps({"backend": a.backend, "mode": a.mode, "cpuSeconds": round(cpu, 3),
                      "wallSeconds": round(wall, 3), "documents": docs, "tokens": tokens}))


if __name__ == "__main__":
    main()
