"""Buckets the on-CPU samples of the verification threads (ledger-verify-*) of a
`perf script -F comm,tid,ip,sym` dump by what their stack is doing; prints shares."""
import collections, sys
buckets = [
    ("R's decompression", ("decompress",)),
    ("multiscalar multiplication", ("multiscalar", "Straus", "Pippenger", "spec_avx512", "spec_avx2")),
    ("SHA-512 (H(R||A||M))", ("sha2::", "Sha512", "sha512", "compress512")),
    ("merlin transcript (Keccak)", ("keccak", "merlin", "strobe")),
    ("BLAKE3", ("blake3",)),
    ("JSON decode", ("serde_json", "decode")),
]
threads = collections.Counter(); counts = collections.Counter(); total = 0
cur = None
def flush(s):
    global total
    if not s or not s[0].startswith("ledger-verify"):
        return
    total += 1
    text = " ".join(s[1:])
    for name, keys in buckets:
        if any(k in text for k in keys):
            counts[name] += 1
            return
    counts["other"] += 1
for line in open(sys.argv[1], errors="replace"):
    if not line.strip():
        flush(cur); cur = None; continue
    if not line.startswith(("\t", " ")):
        flush(cur); cur = [line.split()[0]]; continue
    if cur is not None:
        cur.append(line.strip())
flush(cur)
print(f"verification threads' samples: {total}")
for name, _ in buckets + [("other", ())]:
    print(f"  {name:32s} {counts[name]:6d} {100 * counts[name] / max(total, 1):5.1f} %")
