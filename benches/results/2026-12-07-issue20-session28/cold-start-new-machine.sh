#!/usr/bin/env bash
cd /tmp/cold-clone
start=$(date +%s)
echo "start $(date -u +%FT%TZ)"
scripts/serve.sh > /var/tmp/cold/serve.log 2>&1 &
spid=$!
while ! (exec 3<>/dev/tcp/127.0.0.1/50051) 2>/dev/null; do
  if ! kill -0 $spid 2>/dev/null; then echo "serve died"; exit 1; fi
  sleep 1
done
echo "listening after $(( $(date +%s) - start ))s"
kill $spid; wait $spid
t=$(date +%s)
scripts/test.sh > /var/tmp/cold/test.log 2>&1
echo "test exit $? after $(( $(date +%s) - t ))s"
