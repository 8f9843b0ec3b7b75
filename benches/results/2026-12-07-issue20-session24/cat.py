import pickle,collections,sys
rows=pickle.load(open(sys.argv[1],'rb'))
N=len(rows)
cats=collections.Counter()
for t,fr in rows:
    s=' '.join(fr)
    if 'pool::verify_batch' in s or 'curve25519' in s or 'batch_leaf' in s or 'sha512' in s or 'first_bad_signature' in s: k='sig'
    elif 'Spill::save' in s: k='spill-save'
    elif 'Spill::load' in s: k='spill-load'
    elif 'decide' in s: k='decide'
    elif 'parsed_entries_from_batch' in s: k='reader-parse'
    elif 'next_batch' in s: k='reader-decode'
    elif 'apply_parsed' in s: k='fold-other'
    elif 'blake3' in s: k='blake3'
    elif 'check_hashes' in s: k='hashes'
    elif 'push_entry' in s or 'push_parsed' in s: k='verifier-other'
    elif 'page_fault' in s or 'clear_page' in s: k='faults'
    else: k='other'
    cats[(t,k)]+=1
for (t,k),v in sorted(cats.items()): print(t,k,v,f"{100*v/N:.1f}%")
