import re, sys, collections
run = collections.Counter(); cnt = collections.Counter()
reqs = 0
for line in open(sys.argv[1]):
    m = re.match(r'\s*([\d.]+)\s+\[(\d+)\]\s+(\S+)\s+awakened: (\S+)', line)
    if m:
        if m.group(3).startswith('ledger-writer') and m.group(4).startswith('tokio'): reqs += 1
        continue
    m = re.match(r'\s*([\d.]+)\s+\[(\d+)\]\s+(\S+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)', line)
    if m:
        name = re.sub(r'\[.*', '', m.group(3))
        if name == 'tokio-rt-worker':
            name += '(client)' if '/1' in m.group(3) and False else ''
            pid = m.group(3).split('/')[-1].rstrip(']')
            name += ':' + pid
        run[name] += float(m.group(6)); cnt[name] += 1
print('requests', reqs)
for k, v in run.most_common(14): print(f'{k:32s} {v:8.2f} ms  {1000*v/max(reqs,1):7.1f} us/req  {cnt[k]/max(reqs,1):5.1f} runs/req')
