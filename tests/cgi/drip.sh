#!/bin/sh
# Output that drips out with pauses.
printf 'Content-Type: text/plain\n'
sleep 0.1
printf 'X-Drip: yes\n\n'
for i in 1 2 3 4 5; do
    sleep 0.1
    printf 'drop %s\n' "$i"
done
