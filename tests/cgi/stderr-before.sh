#!/bin/sh
echo "EQUIV-STDERR before headers $SCRIPT_NAME" >&2
printf 'Content-Type: text/plain\n\nstderr came first\n'
