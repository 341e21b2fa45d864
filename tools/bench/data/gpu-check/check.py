# Run on a machine with pyarrow + numpy, in out/device (see build.sh):
# 1. writes parquet files with pyarrow (default options; zstd with small row groups; gzip with
#    format 1.0 pages) and checks @tinyllama/data's reader (bundled as check.mjs) reads the same
#    rows and text as pyarrow;
# 2. reads the LITPKDS shards of `pnpm data:prepare` the way lit-gpt's PackedDataset does and
#    checks every block equals what ShardSet reads (expect.json).
import hashlib, json, subprocess, sys, pyarrow as pa, pyarrow.parquet as pq
print("pyarrow", pa.__version__)
rows = [{"max_stars_repo_path": f"src/m{i}.py", "max_stars_repo_name": "r/x", "max_stars_count": i, "id": str(i),
         "content": f"def f{i}(x):\n    return x * {i}  # ünïcödé 中文\n" * (1 + i % 50)} for i in range(5000)]
table = pa.Table.from_pylist(rows)
ok = True
for name, kw in [("default.parquet", {}), ("zstd-small-groups.parquet", {"compression": "zstd", "row_group_size": 300}),
                 ("gzip-v1.parquet", {"compression": "gzip", "version": "1.0", "data_page_version": "1.0"})]:
    pq.write_table(table, name, **kw)
    expect = hashlib.sha256(b"".join(r["content"].encode() + b"\0" for r in pq.read_table(name).to_pylist())).hexdigest()
    out = json.loads(subprocess.check_output(["./node", "check.mjs", name]))
    good = out["rows"] == len(rows) and out["sha256"] == expect and not out["bad"]
    ok &= good
    print(name, pq.ParquetFile(name).metadata.num_row_groups, "row groups:", "OK" if good else f"MISMATCH {out}")

# LITPKDS shards written by `pnpm data:prepare`, read the way lit-gpt's PackedDataset does:
# struct-unpacked header, np.memmap(offset=24) of the dtype, blocks of 2049.
import struct, numpy as np
HDR = b"LITPKDS"
dtypes = {1: np.uint8, 2: np.int8, 3: np.int16, 4: np.int32, 5: np.int64, 6: np.float32, 7: np.float64, 8: np.uint16}
expect = json.load(open("expect.json"))
for src, e in expect.items():
    h = hashlib.sha256(); blocks = 0
    for name in e["files"]:
        with open(f"data/{src}/{name}", "rb") as f:
            assert f.read(7) == HDR, name
            (version,) = struct.unpack("<Q", f.read(8)); assert version == 1
            (code,) = struct.unpack("<B", f.read(1))
            (chunk,) = struct.unpack("<Q", f.read(8))
        arr = np.memmap(f"data/{src}/{name}", mode="r", order="C", offset=24, dtype=dtypes[code])
        assert len(arr) == chunk and chunk % 2049 == 0, (name, len(arr), chunk)
        for b in range(chunk // 2049):
            h.update(np.asarray(arr[b * 2049:(b + 1) * 2049]).tobytes()); blocks += 1
    good = blocks == e["blocks"] and h.hexdigest() == e["sha256"]
    ok &= good
    print("LITPKDS", src, blocks, "blocks:", "OK" if good else "MISMATCH")
sys.exit(0 if ok else 1)
