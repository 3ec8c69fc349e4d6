#!/bin/sh
# A local path with no Status: an internal redirect. A request body is read
# first (fcgiwrap writes it before it reads the answer; see garbage.sh).
cat > /dev/null
printf 'Location: /target.txt\n\n'
