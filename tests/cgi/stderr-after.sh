#!/bin/sh
printf 'Content-Type: text/plain\n\nstderr comes after\n'
echo "EQUIV-STDERR after headers $SCRIPT_NAME" >&2
