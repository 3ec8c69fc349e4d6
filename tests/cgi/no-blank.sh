#!/bin/sh
# Headers but no blank line after them (the body is read first, as in garbage.sh).
cat > /dev/null
printf 'Content-Type: text/plain\nX-Equiv: 1\n'
