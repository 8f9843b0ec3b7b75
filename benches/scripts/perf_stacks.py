# perf_stacks.py: reads `perf script -F comm,[pid,]tid,ip,sym --no-inline` output (one header line
# per sample, then one tab-indented `ip symbol` line per frame, leaf first) into a list of
# (comm, "pid/tid" or tid, [frames]). The profile scripts under benches/results import it:
#   sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '../../scripts'))
def read(path):
    rows = []; cur = None
    for line in open(path, errors='replace'):
        if not line.strip():
            if cur: rows.append(cur)
            cur = None; continue
        if not line.startswith('\t'):
            if cur: rows.append(cur)
            parts = line.split()
            cur = (parts[0], parts[1] if len(parts) > 1 else '', []); continue
        p = line.strip().split(None, 1)
        if len(p) == 2 and cur is not None: cur[2].append(p[1])
    if cur: rows.append(cur)
    return rows
