#!/usr/bin/env python3
# refold.py BIN DATA_DIR: starts `BIN serve` on DATA_DIR (loopback, fixed ports) and prints the
# seconds from the spawn until the projection worker has caught up with the log: the Prometheus
# gauge projection_lag_entries read above zero, then zero (polled every 50 ms). Then SIGTERM.
import subprocess, sys, time, urllib.request, re, signal
bin_, data = sys.argv[1], sys.argv[2]
t0 = time.monotonic()
p = subprocess.Popen([bin_, 'serve', '--json', '--listen', '127.0.0.1:47001', '--metrics-listen', '127.0.0.1:47002', '--data-dir', data],
                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
line = p.stdout.readline()
listening = time.monotonic() - t0
seen, peak, done = False, 0, None
while time.monotonic() - t0 < 600:
    try:
        text = urllib.request.urlopen('http://127.0.0.1:47002/metrics', timeout=2).read().decode()
    except Exception:
        time.sleep(0.05); continue
    m = re.search(r'^projection_lag_entries (\d+)', text, re.M)
    lag = int(m.group(1)) if m else None
    if lag is not None and lag > 0:
        seen = True; peak = max(peak, lag)
    if seen and lag == 0:
        done = time.monotonic() - t0; break
    time.sleep(0.05)
p.send_signal(signal.SIGTERM); p.wait(timeout=60)
print(f'{bin_.split("/")[-1]} listening {listening:.2f} s, caught up {done if done is None else round(done, 2)} s, peak lag {peak}')
