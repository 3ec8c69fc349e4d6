#!/bin/sh
# Output dripping out in pieces, with pauses, head included.
printf 'HTTP/1.1 200 OK\r\n'
sleep 0.1
printf 'Content-Type: text/plain\r\nX-Nph: drip\r\n\r\n'
for i in 1 2 3 4 5; do
    sleep 0.1
    printf 'drop %s\n' "$i"
done
