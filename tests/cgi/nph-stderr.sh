#!/bin/sh
# stderr around an NPH response.
echo "EQUIV-STDERR nph before $SCRIPT_NAME" >&2
printf 'HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nnph with stderr\n'
echo "EQUIV-STDERR nph after $SCRIPT_NAME" >&2
