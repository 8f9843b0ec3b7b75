# setslice.py PID: for 12 s, sets custom EEVDF slices on the server's threads by name, from env
# SLICE_projections=US (SCHED_BATCH kept), SLICE_tokio=US, SLICE_writer=US (SCHED_OTHER)
import ctypes, os, struct, sys, time
libc = ctypes.CDLL(None, use_errno=True)
pid = int(sys.argv[1])
want = {k[6:]: int(v) for k, v in os.environ.items() if k.startswith('SLICE_')}
done = set()
end = time.time() + 12
while time.time() < end:
    try:
        tids = os.listdir(f'/proc/{pid}/task')
    except FileNotFoundError:
        break
    for tid in tids:
        if tid in done: continue
        try: comm = open(f'/proc/{pid}/task/{tid}/comm').read().strip()
        except OSError: continue
        for prefix, us in want.items():
            if comm.startswith(prefix.replace('_', '-')):
                policy = os.sched_getscheduler(int(tid))
                attr = struct.pack('IIQiIQQQ', 48, policy, 0, 0, 0, us * 1000, 0, 0)
                buf = ctypes.create_string_buffer(attr)
                rc = libc.syscall(314, int(tid), buf, 0)
                print(f'setslice {comm} {tid} policy {policy} {us}us rc {rc} errno {ctypes.get_errno()}', file=sys.stderr)
                done.add(tid)
    time.sleep(0.5)
