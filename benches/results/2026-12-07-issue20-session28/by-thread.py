# by-thread.py SCRIPT PID: each thread of process PID, its samples by kind of work (first matching rule over the stack)
import collections, sys
import os
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '../../scripts'))
import perf_stacks
path, pid = sys.argv[1], sys.argv[2]
rows = perf_stacks.read(path)
RULES = [('sig', ('curve25519', 'ed25519', 'sha512', 'Sha512', 'signatures::')), ('fold', ('projections::', 'audit::fold')),
         ('zstd', ('ZSTD',)), ('parquet/arrow', ('parquet::', 'arrow')), ('json', ('serde_json',)), ('blake3', ('blake3',)),
         ('sha256', ('sha2',)), ('lz4', ('lz4',)), ('alloc', ('mi_', 'malloc', 'free', 'memmove', 'memcpy'))]
threads = collections.Counter(r[1] for r in rows if r[1].startswith(pid + '/'))
for tid, n in threads.most_common():
    c = collections.Counter()
    for comm, t, fr in rows:
        if t != tid: continue
        s = ' '.join(fr); kind = 'other'
        for name, words in RULES:
            if any(w in s for w in words): kind = name; break
        c[kind] += 1
    comm = next(r[0] for r in rows if r[1] == tid)
    print(f'{tid} {comm}: {n} samples;', ', '.join(f'{k} {v} ({100*v/n:.0f} %)' for k, v in c.most_common(8)))
