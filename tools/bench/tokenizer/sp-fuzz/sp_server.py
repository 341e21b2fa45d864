# Long-lived SentencePiece oracle: reads JSON lines {"op":"enc","texts":[...]} / {"op":"dec","ids":[[...]]}
# writes one JSON line back per request.
import sys, json
import sentencepiece as spm
sp = spm.SentencePieceProcessor(model_file=sys.argv[1])
out = sys.stdout
for line in sys.stdin.buffer:
    req = json.loads(line)
    op = req["op"]
    if op == "enc":
        texts = req["texts"]
        res = sp.encode(texts, out_type=int)
        # decode of the same ids
        dec = sp.decode(res) if req.get("dec", True) else None
        out.write(json.dumps({"ids": res, "dec": dec}, ensure_ascii=True))
    elif op == "dec":
        out.write(json.dumps({"dec": sp.decode(req["ids"])}, ensure_ascii=True))
    elif op == "bye":
        break
    out.write("\n")
    out.flush()
