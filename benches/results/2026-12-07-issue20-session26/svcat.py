# svcat.py SCRIPT [THREAD]: server samples by thread, and by kind of work (first matching rule over the whole stack)
import collections, re, sys
import os
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '../../scripts'))
import perf_stacks
rows = [(comm, fr) for comm, _, fr in perf_stacks.read(sys.argv[1])]
if len(sys.argv) > 2: rows = [r for r in rows if r[0].startswith(sys.argv[2])]
RULES = [('sig', ('curve25519', 'ed25519', 'sha512', 'Sha512')), ('projections', ('projections::',)),
 ('compaction', ('CompactionJob', 'BackgroundCompaction')), ('flush', ('FlushJob',)),
 ('memtable', ('MemTable', 'InlineSkipList', 'MemTableInserter')), ('wal', ('WriteToWAL', 'log::Writer', 'WritableFileWriter')),
 ('crc32c', ('crc32c',)), ('blake3', ('blake3',)), ('sha256', ('sha2::', 'sha256')),
 ('fsync', ('fdatasync', 'fsync', 'ext4_sync')), ('anchor', ('anchor::',)), ('multiget', ('MultiGet',)),
 ('json', ('serde_json', 'serde::')), ('prost', ('prost::',)), ('http2', ('h2::', 'hyper::')),
 ('tonic', ('tonic::',)), ('net', ('tcp_', 'sendmsg', 'recvmsg', 'sock_')), ('alloc', ('malloc', 'free', 'mi_', 'je_', 'memmove', 'memcpy')),
 ('sched', ('futex', 'schedule', 'finish_task_switch', 'sched_yield', 'epoll')), ('tokio', ('tokio::',))]
def cat(fr):
    s = ' '.join(fr)
    for name, words in RULES:
        if any(w in s for w in words): return name
    return 'other:' + (re.sub(r'<.*', '', fr[0])[:40] if fr else '?')
n = len(rows)
print('samples', n)
byc = collections.Counter(r[0] for r in rows)
for k, v in byc.most_common(12): print(f'  {v:6d} {100*v/n:5.1f}% {k}')
print('by work')
c = collections.Counter(cat(fr) for _, fr in rows)
for k, v in c.most_common(30): print(f'  {v:6d} {100*v/n:5.1f}% {k}')
