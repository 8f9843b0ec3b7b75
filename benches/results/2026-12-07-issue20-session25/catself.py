# catself.py PICKLE BUCKET [DEPTH]: the self samples of one of ../2026-12-07-issue20-session24/cat.py's
# buckets (same rules), each with DEPTH callers; percentages of all samples
import collections, pickle, sys

def bucket(frames):
    s = ' '.join(frames)
    for words, name in [
        (('pool::verify_batch', 'curve25519', 'batch_leaf', 'sha512', 'first_bad_signature'), 'sig'),
        (('Spill::save',), 'spill-save'), (('Spill::load',), 'spill-load'), (('decide',), 'decide'),
        (('parsed_entries_from_batch',), 'reader-parse'), (('next_batch',), 'reader-decode'),
        (('apply_parsed',), 'fold-other'), (('blake3',), 'blake3'), (('check_hashes',), 'hashes'),
        (('push_entry', 'push_parsed'), 'verifier-other'), (('page_fault', 'clear_page'), 'faults'),
    ]:
        if any(w in s for w in words):
            return name
    return 'other'

rows = pickle.load(open(sys.argv[1], 'rb'))
want, depth = sys.argv[2], int(sys.argv[3]) if len(sys.argv) > 3 else 0
counts = collections.Counter(' <- '.join(f[:70] for f in fr[:depth + 1]) for _, fr in rows if bucket(fr) == want)
for frames, n in counts.most_common(25):
    print(n, f"{100 * n / len(rows):.1f}%", frames)
