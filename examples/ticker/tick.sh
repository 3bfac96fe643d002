#!/bin/sh
# ticker: the example background worker. Prints a line every second; stops cleanly on SIGTERM.
trap 'echo "ticker: stopping"; exit 0' TERM
n=0
while true; do
	n=$((n + 1))
	echo "tick $n (release ${BERTH_RELEASE:-?}, ${BERTH_INSTANCE:-?})"
	sleep 1 &
	wait $!
done
